"""The ``mempulse`` commands: ``run`` (trace a program, save its result) and
``report`` (render a saved result).  ``mempulse script.py`` is ``run``'s
shorthand (:mod:`mempulse._cli` dispatches); the views themselves are in
:mod:`mempulse.reporters`.
"""
