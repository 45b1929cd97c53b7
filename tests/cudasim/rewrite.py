"""The CUDA simulator's source rewrite: what g++ cannot read in a .cu file.

Three token-aware rewrites, each keeping every line where it was (and a
``#line`` at the top, so that diagnostics and ``__FILE__`` name the original
file):

- a launch ``kernel<<<grid, block, smem, stream>>>(args)`` becomes
  ``::cudasim::launch(kernel, ::cudasim::LaunchConfig(grid, block, smem,
  stream), "kernel", __FILE__, __LINE__, args)``;
- a ``__shared__`` declaration becomes a reference to storage that the
  simulator allocates for each block (``extern __shared__`` arrays: a
  pointer to the block's dynamic shared memory);
- every ``__global__`` function's body starts with
  ``::cudasim::detail::kernel_entry(__PRETTY_FUNCTION__, <launch bounds>)``.

Comments, string and character literals are skipped. Anything the rewrite
does not understand is an error, never passed through.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass


class RewriteError(Exception):
    pass


@dataclass
class Tok:
    kind: str  # "id", "num", "str", "punct", "ws", "comment"
    text: str
    start: int
    end: int


_ID = re.compile(r"[A-Za-z_]\w*")
_NUM = re.compile(r"\.?\d(?:[\w.]|[eEpP][+-])*")


def tokenize(src: str) -> list[Tok]:
    toks, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c in " \t\r\n\f\v" or (c == "\\" and src.startswith("\\\n", i)):
            j = i + 1
            while j < n and (src[j] in " \t\r\n\f\v" or src.startswith("\\\n", j)):
                j += 2 if src[j] == "\\" else 1
            toks.append(Tok("ws", src[i:j], i, j))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            toks.append(Tok("comment", src[i:j], i, j))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                raise RewriteError("unterminated comment")
            toks.append(Tok("comment", src[i:j + 2], i, j + 2))
            i = j + 2
        elif c in "\"'":
            if c == '"' and i > 0 and src[i - 1] == "R":
                raise RewriteError("raw string literals are not supported")
            j = i + 1
            while j < n and src[j] != c:
                if src[j] == "\\":
                    j += 1
                if j < n and src[j] == "\n":
                    raise RewriteError(f"unterminated literal at offset {i}")
                j += 1
            toks.append(Tok("str", src[i:j + 1], i, j + 1))
            i = j + 1
        elif c.isalpha() or c == "_":
            m = _ID.match(src, i)
            toks.append(Tok("id", m.group(), i, m.end()))
            i = m.end()
        elif c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            m = _NUM.match(src, i)
            toks.append(Tok("num", m.group(), i, m.end()))
            i = m.end()
        elif src.startswith("::", i):
            toks.append(Tok("punct", "::", i, i + 2))
            i += 2
        else:
            toks.append(Tok("punct", c, i, i + 1))
            i += 1
    return toks


def _code(toks):
    """Indices of the tokens that are neither whitespace nor comments."""
    return [k for k, t in enumerate(toks) if t.kind not in ("ws", "comment")]


def _line_breaks(text: str) -> str:
    """The line breaks of `text` (with a macro's continuation backslash), to keep lines in place."""
    return "".join("\\\n" if m.group(1) else "\n" for m in re.finditer(r"(\\)?\n", text))


def _run(toks, code, pos, text):
    """True if code tokens from position pos spell `text` with no gaps (e.g. '<<<')."""
    if pos + len(text) > len(code):
        return False
    for d, ch in enumerate(text):
        t = toks[code[pos + d]]
        if t.text != ch or (d and toks[code[pos + d - 1]].end != t.start):
            return False
    return True


def _match_forward(toks, code, pos, open_, close):
    """Position of the token closing the bracket at code position pos."""
    depth = 0
    for p in range(pos, len(code)):
        t = toks[code[p]].text
        if t == open_:
            depth += 1
        elif t == close:
            depth -= 1
            if depth == 0:
                return p
    raise RewriteError(f"unbalanced {open_!r} at offset {toks[code[pos]].start}")


class _Edits:
    def __init__(self, src):
        self.src, self.edits = src, []

    def replace(self, start, end, text):
        self.edits.append((start, end, text))

    def apply(self):
        out, at = [], 0
        for start, end, text in sorted(self.edits):
            if start < at:
                raise RewriteError(f"overlapping rewrites at offset {start}")
            out += [self.src[at:start], text]
            at = end
        return "".join(out + [self.src[at:]])


def _kernel_start(toks, code, pos):
    """Code position where the kernel expression before '<<<' (at pos) begins."""
    p = pos - 1
    if p < 0:
        raise RewriteError("a launch without a kernel")
    if toks[code[p]].text == ">":  # template arguments
        depth = 0
        while p >= 0:
            t = toks[code[p]].text
            depth += t == ">"
            depth -= t == "<"
            if depth == 0:
                break
            p -= 1
        p -= 1
    if p < 0 or toks[code[p]].kind != "id":
        raise RewriteError(f"cannot read the kernel before '<<<' at offset {toks[code[pos]].start}")
    while p >= 2 and toks[code[p - 1]].text == "::" and toks[code[p - 2]].kind == "id":
        p -= 2
    if p >= 1 and toks[code[p - 1]].text == "::":
        p -= 1
    return p


def _rewrite_launches(toks, code, src, edits):
    p = 0
    while p < len(code):
        if not _run(toks, code, p, "<<<"):
            p += 1
            continue
        k0 = _kernel_start(toks, code, p)
        depth, q = 0, p + 3
        while q < len(code):
            t = toks[code[q]].text
            if depth == 0 and _run(toks, code, q, ">>>"):
                break
            depth += t in "([{"
            depth -= t in ")]}"
            q += 1
        else:
            raise RewriteError(f"no '>>>' after '<<<' at offset {toks[code[p]].start}")
        a0 = q + 3
        if a0 >= len(code) or toks[code[a0]].text != "(":
            raise RewriteError(f"a launch without arguments at offset {toks[code[p]].start}")
        a1 = _match_forward(toks, code, a0, "(", ")")
        kernel = src[toks[code[k0]].start:toks[code[p - 1]].end]
        cfg = src[toks[code[p + 2]].end:toks[code[q]].start].strip()
        args = src[toks[code[a0]].end:toks[code[a1]].start].strip()
        start, end = toks[code[k0]].start, toks[code[a1]].end
        name = kernel.replace("\\", "\\\\").replace('"', '\\"')
        call = (f"::cudasim::launch({kernel}, ::cudasim::LaunchConfig({cfg}), \"{name}\", __FILE__, __LINE__"
                + (f", {args}" if args else "") + ")")
        edits.replace(start, end, " ".join(call.split()) + _line_breaks(src[start:end]))
        p = a1 + 1


def _rewrite_shared(toks, code, src, edits):
    for p, k in enumerate(code):
        if toks[k].text != "__shared__":
            continue
        q = p + 1
        is_extern = p > 0 and toks[code[p - 1]].text == "extern"
        align = None
        if q < len(code) and toks[code[q]].text in ("__align__", "alignas"):
            close = _match_forward(toks, code, q + 1, "(", ")")
            align = src[toks[code[q + 1]].end:toks[code[close]].start].strip()
            q = close + 1
        semi = q
        while semi < len(code) and toks[code[semi]].text not in (";", "=", ","):
            semi += 1
        if semi >= len(code) or toks[code[semi]].text != ";":
            raise RewriteError(f"a __shared__ declaration the rewrite cannot read (one plain declarator, "
                               f"no initialiser) at offset {toks[k].start}")
        bracket = next((r for r in range(q, semi) if toks[code[r]].text == "["), semi)
        name_pos = bracket - 1
        if name_pos < q + 1 or toks[code[name_pos]].kind != "id":
            raise RewriteError(f"cannot find the name of the __shared__ variable at offset {toks[k].start}")
        name = toks[code[name_pos]].text
        type_ = src[toks[code[q]].start:toks[code[name_pos - 1]].end]
        dims = src[toks[code[bracket]].start:toks[code[semi - 1]].end] if bracket < semi else ""
        start = toks[code[p - 1]].start if is_extern else toks[k].start
        end = toks[code[semi]].end
        if is_extern:
            if dims.replace(" ", "") != "[]":
                raise RewriteError(f"extern __shared__ {name} must be an array of unknown size")
            al = align or f"alignof({type_})"
            text = (f"{type_}* {name} = static_cast<{type_}*>(::cudasim::detail::dynamic_shared({al}, "
                    f"\"{name}\", __FILE__, __LINE__));")
        else:
            site = f"cudasim_site_{name}_{toks[k].start}"
            text = (f"static ::cudasim::detail::SharedSite {site}{{\"{name}\", __FILE__, __LINE__, 0, nullptr}}; "
                    f"auto& {name} = {site}.get<{type_}{dims}>();")
            if align:
                text = text.replace(".get<", f".get_aligned<{align}, ")
        edits.replace(start, end, " ".join(text.split()) + _line_breaks(src[start:end]))


def _rewrite_kernels(toks, code, src, edits):
    for p, k in enumerate(code):
        if toks[k].text != "__global__":
            continue
        q, bounds = p + 1, "0"
        while q < len(code):
            t = toks[code[q]]
            if t.text == "__launch_bounds__":
                close = _match_forward(toks, code, q + 1, "(", ")")
                args = src[toks[code[q + 1]].end:toks[code[close]].start]
                bounds = args.split(",")[0].strip()
                q = close + 1
                continue
            if t.kind == "id" and q + 1 < len(code) and toks[code[q + 1]].text == "(":
                break
            if t.text in (";", "{"):
                raise RewriteError(f"cannot read the __global__ function at offset {toks[k].start}")
            q += 1
        close = _match_forward(toks, code, q + 1, "(", ")")
        body = close + 1
        if body < len(code) and toks[code[body]].text == "{":
            at = toks[code[body]].end
            edits.replace(at, at, f" ::cudasim::detail::kernel_entry(__PRETTY_FUNCTION__, {bounds});")


def rewrite(src: str, path: str) -> str:
    """The source `src` of `path` as the simulator's g++ build compiles it."""
    toks = tokenize(src)
    code = _code(toks)
    edits = _Edits(src)
    _rewrite_launches(toks, code, src, edits)
    _rewrite_shared(toks, code, src, edits)
    _rewrite_kernels(toks, code, src, edits)
    quoted = path.replace("\\", "\\\\").replace('"', '\\"')
    return f'#line 1 "{quoted}"\n' + edits.apply()


def needs_rewrite(src: str) -> bool:
    """Whether a header holds anything the rewrite changes."""
    code = [t.text for t in tokenize(src) if t.kind not in ("ws", "comment")]
    return "__shared__" in code or "__global__" in code or "<<<" in "".join(code)


if __name__ == "__main__":  # python rewrite.py FILE: print the rewritten file
    path = sys.argv[1]
    sys.stdout.write(rewrite(open(path).read(), path))
