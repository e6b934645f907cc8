"""What the sys.monitoring driver reads from a code object's bytecode (3.12+).

Each fact is computed once per code object and cached until the code dies
(by identity: a lookup costs no hash of the code object, since blocks ask
again for the code they run).
"""
import weakref

_facts = {}  # id(code) -> (weak reference to code, self loops, global call sites)


def facts(code):
    """(self_loops(code), global_call_sites(code)), read once per code object."""
    entry = _facts.get(id(code))
    if entry is not None and entry[0]() is code:
        return entry[1:]
    found = (_find_self_loops(code), _find_global_call_sites(code))
    key = id(code)
    try:
        # Dropped as the code dies, before its id can be reused (the dict
        # bound here: at interpreter exit the module's globals go first).
        _facts[key] = (weakref.ref(code, lambda _, key=key, facts=_facts: facts.pop(key, None)),) + found
    except TypeError:  # not weakly referenceable
        pass
    return found


def self_loops(code):
    """{destination offset: line} of the backward jumps in code that stay on one line."""
    return facts(code)[0]


def global_call_sites(code):
    """{offset: global name} of the calls in code whose callable is a global
    name's value (``f(x)``, ``len(x)``): the callee at such a site changes
    only when the name is rebound.  Found where the arguments are plain
    loads; other calls are left out (never wrongly in)."""
    return facts(code)[1]


def _find_self_loops(code):
    import dis  # here: importing mempulse needs none of it

    lines = {}
    for start, end, line in code.co_lines():
        if line is not None:
            for offset in range(start, end, 2):
                lines[offset] = line
    instructions = list(dis.get_instructions(code))
    loops = {}
    for instruction in instructions:
        if instruction.opname.startswith("JUMP_BACKWARD"):
            line = lines.get(instruction.offset)
            target = instruction.argval
            if line is None or lines.get(target) != line:
                continue
            body = [i.opname for i in instructions if target <= i.offset < instruction.offset]
            if _COMPREHENSION_OPS.intersection(body):
                # An inlined comprehension (3.12+): a callback per item
                # would cost what the comprehension does; its line counts once.
                continue
            loops[target] = line
    return loops


_COMPREHENSION_OPS = frozenset(["LIST_APPEND", "SET_ADD", "MAP_ADD"])

# Instructions that push values and nothing else, by how many.
_PLAIN_LOADS = {
    "LOAD_FAST": 1,
    "LOAD_FAST_CHECK": 1,
    "LOAD_FAST_BORROW": 1,
    "LOAD_CONST": 1,
    "LOAD_SMALL_INT": 1,
    "LOAD_DEREF": 1,
    "LOAD_FAST_LOAD_FAST": 2,
    "LOAD_FAST_BORROW_LOAD_FAST_BORROW": 2,
}


def _find_global_call_sites(code):
    import dis

    sites = {}
    pushed = None  # values pushed since a LOAD_GLOBAL of a callable, or None
    for instruction in dis.get_instructions(code):
        name, arg = instruction.opname, instruction.arg
        if name == "LOAD_GLOBAL" and arg is not None and arg & 1:
            pushed = 0  # the global and a NULL: a call's callable follows
            callee = instruction.argval
            continue
        if pushed is None:
            continue
        if getattr(instruction, "is_jump_target", True):
            pushed = None  # reached from elsewhere too: its stack may differ
            continue
        if name in ("EXTENDED_ARG", "CACHE", "NOP", "KW_NAMES"):
            continue
        if name in _PLAIN_LOADS:
            pushed += _PLAIN_LOADS[name]
            continue
        if name == "LOAD_GLOBAL":  # without a NULL: a plain value
            pushed += 1
            continue
        if (name == "CALL" and arg == pushed) or (name == "CALL_KW" and arg == pushed - 1):
            sites[instruction.offset] = callee
        pushed = None  # anything else: not followed further
    return sites
