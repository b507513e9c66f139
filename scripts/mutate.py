#!/usr/bin/env python3
"""Mutation testing of src/: does the test suite notice when the code is wrong?

Each mutant is one small change to one line of a source file under src/:
  ror    a relational operator replaced (< <=, > >=, == !=, each both ways)
  aor    an arithmetic operator replaced (+ -, += -=, each both ways)
  lcr    && and || swapped
  const  an integer literal n replaced by n + 1 (and 1 by 0)
  neg    the condition of an if or while negated
  del    an expression statement (a call or an assignment) removed
For each mutant the release tree (RelWithDebInfo, no LAB_DEBUG: the code
users run) is rebuilt from a private copy of the sources and the unit tests
(all but test_signals, unless --with-signals) run under a time limit.  The mutant is killed when a test fails or the run
times out (a hang is a failure), survives when every test passes, and is
stillborn when it does not compile, or reads a variable it never set (GCC's
uninitialized warnings are errors here): not counted.

  scripts/mutate.py --list                   every mutant, numbered
  scripts/mutate.py --sample 12 --seed 1     a seeded sample, stable across edits
                                             of other lines (scripts/mutants-equivalent.txt
                                             lists mutants it never draws)
  scripts/mutate.py --all                    every mutant (hours)
  scripts/mutate.py --only src/core/path.c:77     the mutants of some lines
  scripts/mutate.py --mutant N               one mutant by number of --list
  scripts/mutate.py --custom 'src/core/room.c:162:<= r->high:<= r->high + 8'
                                             a mutant written by hand: on that
                                             line, the first 'old' becomes 'new'

The score is killed / (killed + survived).  Survivors are printed as
file:line with the change; some are equivalent (the program cannot behave
differently, e.g. a counter that only statistics read, or a bound that no
reachable state meets).  A sample is reproducible: the same seed on the
same sources picks the same mutants.

No mutation tool for C is packaged in Debian; this runner stays small and
text-based (it mutates lines, not a syntax tree), so a few mutants do not
compile and are reported as stillborn.
"""
import argparse
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WORK = os.path.join(ROOT, "build-mutate")
TREE = os.path.join(WORK, "tree")
BUILD = os.path.join(WORK, "build")

# The unit tests, but test_signals: its storm of 50000 deliveries takes 25 s
# on a quiet machine and minutes on a loaded one, and test_signal_storm runs
# the same handler paths in 3 s.  --with-signals puts it back.
TESTS = ["-L", "unit", "-E", "^test_signals"]

# Mutants known to be equivalent (no program can tell them from the original),
# each with the reason: a sample leaves them out, so that drawing one cannot
# fail the score.  Named by file, the line's text and the change, not by line
# number, so that the list survives edits elsewhere.
EQUIVALENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mutants-equivalent.txt")

ROR = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
AOR = {"+": "-", "-": "+", "+=": "-=", "-=": "+="}
LCR = {"&&": "||", "||": "&&"}
TOKEN = re.compile(r"<<=|>>=|<<|>>|->|\+\+|--|&&|\|\||[<>=!]=|\+=|-=|[<>+\-]|\b\d+[uUlL]*\b|\w+|\S")
SKIP_LINE = re.compile(r"^\s*(#|\*|/\*|//)|lab_assert\(|_Static_assert|__builtin_prefetch|\bcase\b.*:")
DECL_START = re.compile(r"^\s*(static|const|struct|enum|union|unsigned|int|long|size_t|uint\d+_t|int\d+_t|bool|char|"
                        r"void|uintptr_t|_Atomic|lab_\w+_t|lab_\w+ \*|double|float|typedef)\b")


def strip_strings(line):
    """The line with string and char literals blanked, and a trailing comment cut."""
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c in "\"'":
            q, j = c, i + 1
            while j < n and line[j] != q:
                j += 2 if line[j] == "\\" else 1
            out.append(" " * (min(j, n - 1) - i + 1))
            i = j + 1
            continue
        if line.startswith("/*", i) or line.startswith("//", i):
            break
        out.append(c)
        i += 1
    return "".join(out)


def code_lines(path):
    """(line number, text, code) of the lines outside block comments."""
    in_comment = False
    with open(path) as f:
        for no, text in enumerate(f, 1):
            code = text
            if in_comment:
                if "*/" not in code:
                    continue
                code = " " * (code.index("*/") + 2) + code[code.index("*/") + 2:]
                in_comment = False
            if "/*" in strip_strings(code) and "*/" not in code[code.index("/*"):]:
                in_comment = True
                code = code[:code.index("/*")]
            yield no, text, strip_strings(code)


def balanced_paren_end(code, start):
    depth = 0
    for i in range(start, len(code)):
        if code[i] == "(":
            depth += 1
        elif code[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def mutants_of_file(rel):
    out = []
    for no, text, code in code_lines(os.path.join(ROOT, rel)):
        if SKIP_LINE.search(text) or not code.strip():
            continue
        prev = None
        for m in TOKEN.finditer(code):
            tok, col = m.group(0), m.start()
            # a binary operator follows an operand, not another operator
            binary = prev is not None and (re.match(r"\w", prev) or prev in (")", "]"))
            if tok in ROR and binary and not (tok in "<>" and "#include" in code):
                out.append((rel, no, col, tok, ROR[tok], "ror"))
            elif tok in AOR and (binary or tok in ("+=", "-=")):
                out.append((rel, no, col, tok, AOR[tok], "aor"))
            elif tok in LCR:
                out.append((rel, no, col, tok, LCR[tok], "lcr"))
            elif re.fullmatch(r"\d+[uUlL]*", tok) and prev not in ("[",) and not code.lstrip().startswith("["):
                digits = re.match(r"\d+", tok).group(0)
                suffix = tok[len(digits):]
                if digits.startswith("0") and len(digits) > 1:
                    continue   # octal
                v = int(digits)
                out.append((rel, no, col, tok, ("0" if v == 1 else str(v + 1)) + suffix, "const"))
            prev = tok
        # negate an if / while condition that closes on this line
        for m in re.finditer(r"\b(if|while)\s*\(", code):
            open_at = m.end() - 1
            close = balanced_paren_end(code, open_at)
            if close > 0:
                cond = text[open_at + 1:close]   # the real text: literals were blanked in `code`
                out.append((rel, no, open_at, "(" + cond + ")", "(!(" + cond + "))", "neg"))
        # remove an expression statement: a call or an assignment on its own line
        s = code.strip()
        if (s.endswith(";") and not DECL_START.match(code) and not re.match(r"(return|break|continue|goto)\b", s)
                and re.match(r"[\w*(][\w\->.\[\]()* ]*(\(|=|\+=|-=|\+\+|--)", s) and s.count("(") == s.count(")")
                and not s.startswith("}")):
            start = code.index(s)
            out.append((rel, no, start, text[start:start + len(s)], ";", "del"))
    return out


def identity(m, text):
    """What names a mutant across edits of other lines: its file, its line's
    text, the column and the change (stable_sample adds which of the equal
    lines of that file it is on)."""
    rel, no, col, old, new, op = m
    return (rel, text.strip(), col, old, new, op)


def load_equivalent():
    """(file, stripped line, old, new) of each listed equivalent mutant."""
    out = set()
    if not os.path.exists(EQUIVALENT):
        return out
    with open(EQUIVALENT) as f:
        for raw in f:
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            parts = [x.strip() for x in raw.rstrip("\n").split(" | ", 3)]
            if len(parts) != 4 or " -> " not in parts[1]:
                sys.exit(f"mutate: {os.path.basename(EQUIVALENT)}: expected 'file | old -> new | why | line': {raw!r}")
            old, new = (x.strip().strip("'") for x in parts[1].split(" -> ", 1))
            out.add((parts[0], parts[3], old, new))
    return out


def stable_sample(mutants, n, seed):
    """The n mutants whose hash of (seed, identity) is smallest.  A mutant's
    rank does not depend on the rest of the tree, so an edit elsewhere in
    src/ leaves the sample of untouched code as it was (a plain random draw
    by index changed completely whenever the number of mutants changed),
    and listed equivalent mutants are never drawn."""
    equivalent = load_equivalent()
    texts, seen, keyed = {}, {}, []
    for i, m in enumerate(mutants):
        if m[0] not in texts:
            with open(os.path.join(ROOT, m[0])) as f:
                texts[m[0]] = f.readlines()
        text = texts[m[0]][m[1] - 1]
        if (m[0], text.strip(), m[3], m[4]) in equivalent:
            continue
        ident = identity(m, text)
        k = seen.get(ident, 0)   # the k-th line of its file with this text and change
        seen[ident] = k + 1
        h = hashlib.sha256(repr((seed, ident, k)).encode()).hexdigest()
        keyed.append((h, i))
    return sorted(i for _, i in sorted(keyed)[:n])


# Headers that hold the inline halves of fast paths (code, not
# declarations): mutated like the sources they are compiled into.
INLINE_HEADERS = ("owner.h", "fault.h", "lane.h")


def all_mutants():
    # every source the release tree builds: not the bare-metal port
    files = sorted(os.path.relpath(os.path.join(d, f), ROOT)
                   for d, _, names in os.walk(os.path.join(ROOT, "src")) if "baremetal" not in d
                   for f in names if f.endswith(".c") or f in INLINE_HEADERS)
    out = []
    for f in files:
        out.extend(mutants_of_file(f))
    return out


def describe(m):
    rel, no, col, old, new, op = m
    short = lambda s: s if len(s) <= 60 else s[:57] + "..."
    return f"{rel}:{no} [{op}] '{short(old)}' -> '{short(new)}'"


def apply(m):
    rel, no, col, old, new, _ = m
    src = os.path.join(ROOT, rel)
    with open(src) as f:
        lines = f.readlines()
    line = lines[no - 1]
    assert line[col:col + len(old)] == old, (describe(m), line)
    lines[no - 1] = line[:col] + new + line[col + len(old):]
    with open(os.path.join(TREE, rel), "w") as f:
        f.writelines(lines)


def restore(m):
    shutil.copyfile(os.path.join(ROOT, m[0]), os.path.join(TREE, m[0]))


def run(cmd, timeout, cwd, log):
    """Run cmd in its own process group; True if it exited 0, None on timeout."""
    p = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return p.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return None


def prepare(jobs):
    if os.path.isdir(TREE):
        shutil.rmtree(TREE)
    os.makedirs(TREE)
    for d in ("src", "include", "tests", "cmake", "fuzz"):
        if os.path.isdir(os.path.join(ROOT, d)):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(TREE, d))
    shutil.copy(os.path.join(ROOT, "CMakeLists.txt"), TREE)
    os.makedirs(BUILD, exist_ok=True)
    with open(os.path.join(WORK, "baseline.log"), "w") as log:
        # A removed statement often leaves a variable unused: that is not
        # a compile error worth losing the mutant for.  One that leaves a
        # variable read before it is set is: what such a program does is
        # the compiler's choice, not the tests' to catch.
        ok = run(["cmake", "-S", TREE, "-B", BUILD, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DLAB_BUILD_BENCH=OFF",
                  "-DLAB_BUILD_TOOLS=OFF", "-DLAB_BUILD_EXAMPLES=OFF", "-DLAB_BUILD_MAN=OFF",
                  "-DCMAKE_C_FLAGS=-Wno-unused-variable -Wno-unused-but-set-variable -Wno-unused-parameter "
                  "-Wno-unused-function -Werror=uninitialized -Werror=maybe-uninitialized"], 300, WORK, log)
        ok = ok and run(["cmake", "--build", BUILD, f"-j{jobs}"], 900, WORK, log)
        if not ok:
            sys.exit("mutate: the unmutated tree does not build (see build-mutate/baseline.log)")
        t0 = time.time()
        ok = run(["ctest", *TESTS, f"-j{jobs}", "--output-on-failure"], 900, BUILD, log)
        if not ok:
            sys.exit("mutate: the unmutated tree fails its tests (see build-mutate/baseline.log)")
        return time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true")
    g.add_argument("--all", action="store_true")
    g.add_argument("--sample", type=int)
    g.add_argument("--only", action="append", help="file:line (repeatable)")
    g.add_argument("--mutant", type=int, action="append")
    g.add_argument("--custom", action="append", help="file:line:old:new (repeatable)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "2")))
    ap.add_argument("--min-score", type=float, default=0.0, help="exit 1 when the score is below (0..100)")
    ap.add_argument("--with-signals", action="store_true", help="run test_signals too (slow)")
    a = ap.parse_args()
    if a.with_signals:
        TESTS[:] = ["-L", "unit"]

    mutants = all_mutants()
    if a.list:
        for i, m in enumerate(mutants):
            print(f"{i:5d} {describe(m)}")
        print(f"{len(mutants)} mutants", file=sys.stderr)
        return 0
    if a.all:
        chosen = list(range(len(mutants)))
    elif a.only:
        want = {(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in a.only}
        chosen = [i for i, m in enumerate(mutants) if (m[0], m[1]) in want]
    elif a.mutant:
        chosen = a.mutant
    elif a.custom:
        chosen = []
        for spec in a.custom:
            rel, no, old, new = spec.split(":", 3)
            with open(os.path.join(ROOT, rel)) as f:
                line = f.readlines()[int(no) - 1]
            if old not in line:
                sys.exit(f"mutate: '{old}' is not on {rel}:{no}")
            chosen.append(len(mutants))
            mutants.append((rel, int(no), line.index(old), old, new, "custom"))
    else:
        chosen = stable_sample(mutants, a.sample or 12, a.seed)

    baseline = prepare(a.jobs)
    limit = 3 * baseline + 30
    print(f"mutate: {len(chosen)} of {len(mutants)} mutants; unmutated tests take {baseline:.0f} s, "
          f"limit {limit:.0f} s a mutant", flush=True)
    killed, survived, stillborn = [], [], []
    t_start = time.time()
    for k, i in enumerate(chosen, 1):
        m = mutants[i]
        apply(m)
        logpath = os.path.join(WORK, "mutant.log")
        with open(logpath, "w") as log:
            built = run(["cmake", "--build", BUILD, f"-j{a.jobs}"], 600, WORK, log)
            if not built:
                verdict = "stillborn"
            else:
                t0 = time.time()
                passed = run(["ctest", *TESTS, f"-j{a.jobs}", "--stop-on-failure"], limit, BUILD, log)
                verdict = "survived" if passed else ("killed (timeout)" if passed is None else "killed")
        if verdict == "killed":
            with open(logpath) as log:
                failed = sorted(set(re.findall(r"\d+ - ([\w.]+) \((?!Skipped|Disabled|Not Run)", log.read())))
            verdict += " by " + (", ".join(failed) or "?")
        restore(m)
        (survived if verdict == "survived" else stillborn if verdict == "stillborn" else killed).append(i)
        print(f"[{k}/{len(chosen)}] #{i} {describe(m)}: {verdict}", flush=True)
    # leave the tree unmutated and built
    run(["cmake", "--build", BUILD, f"-j{a.jobs}"], 600, WORK, subprocess.DEVNULL)
    counted = len(killed) + len(survived)
    score = 100.0 * len(killed) / counted if counted else 100.0
    print(f"\nmutate: score {score:.1f}% ({len(killed)} killed, {len(survived)} survived, "
          f"{len(stillborn)} stillborn) in {time.time() - t_start:.0f} s; seed {a.seed}")
    for i in survived:
        print(f"  survived #{i}: {describe(mutants[i])}")
    return 1 if score < a.min_score else 0


if __name__ == "__main__":
    sys.exit(main())
