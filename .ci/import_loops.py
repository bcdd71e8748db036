#!/usr/bin/env python3
"""Checks that the core's module import graph has no loop (issue 12).

One node per source file (a `mod.rs` is its directory's module). An edge for every
`crate::a::b` path, every `super::` path, and every `use child::` in a module of its own
children, outside comments and `#[cfg(test)] mod tests`. Loom model files are left out.
Prints each loop and exits 1 if there is one; with `--graph`, prints the graph too.

    python3 .ci/import_loops.py crates/millrace/src [--graph]
"""
import glob
import os
import re
import sys


def module_of(path):
    m = path[:-3]
    return m[:-4] if m.endswith("/mod") else m


def exists(base):
    return os.path.exists(base + ".rs") or os.path.exists(base + "/mod.rs")


def graph(root):
    os.chdir(root)
    mods = {}
    for f in glob.glob("**/*.rs", recursive=True):
        if f.startswith("loom_") or f == "lib.rs":
            continue
        m = module_of(f)
        src = open(f).read()
        code = "\n".join(l for l in src.split("\n") if not l.strip().startswith("//"))
        cut = code.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            code = code[:cut]
        deps = set()
        for a, b in re.findall(r"crate::([a-z_]+)(?:::([a-z_]+))?", code):
            deps.add(a + "/" + b if b and exists(a + "/" + b) else a)
        if "/" in m:
            parent = m.rsplit("/", 1)[0]
            grandparent = parent.rsplit("/", 1)[0] if "/" in parent else None
            for d in re.findall(r"super::super::([a-z_]+)", code):
                if grandparent:
                    deps.add(grandparent + "/" + d if exists(grandparent + "/" + d) else grandparent)
            code_one = re.sub(r"super::super::", "", code)
            if re.search(r"super::\{", code_one):
                deps.add(parent)
            for d in re.findall(r"super::([a-z_]+)", code_one):
                deps.add(parent + "/" + d if exists(parent + "/" + d) else parent)
        if f.endswith("mod.rs") or exists(m + "/x") is False:
            for d in re.findall(r"(?m)^\s*(?:pub(?:\([a-z]+\))? )?use ([a-z_]+)::", code):
                if exists(m + "/" + d):
                    deps.add(m + "/" + d)
        deps.discard(m)
        mods[m] = deps
    return mods


def loops(mods):
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in mods.get(v, ()):
            if w not in mods:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    mods = graph(sys.argv[1])
    if "--graph" in sys.argv:
        for m in sorted(mods):
            print(m, "->", " ".join(sorted(mods[m])))
    found = loops(mods)
    for comp in found:
        print("import loop:", " <-> ".join(comp))
    if found:
        sys.exit(1)
    print(f"no import loop among {len(mods)} modules")
