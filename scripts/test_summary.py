"""Counts test cases across meson test logs: TAP tests by their ok / not ok
lines, pytest runs by their summary line, anything else as one case. Prints
one line per suite run and ends with "N passed, N failed"; exits 1 if any
failed or if no test ran."""
import json
import re
import sys


def count(entry):
    out = entry.get("stdout") or ""
    result = entry.get("result")
    tap = re.findall(r"^(not ok|ok)\b", out, re.M)
    if tap:
        passed = sum(1 for t in tap if t == "ok")
        failed = len(tap) - passed
        # a crash after the last case, or a missing plan, still fails the run
        if result not in ("OK", "EXPECTEDFAIL", "SKIP") and failed == 0:
            failed = 1
        return passed, failed
    summary = re.findall(r"^=*\s*(\d+ (?:passed|failed|errors?|skipped)[^\n]*) in [\d.]+s", out, re.M)
    if summary:
        last = summary[-1]
        num = lambda word: sum(int(n) for n in re.findall(r"(\d+) " + word, last))
        passed, failed = num("passed"), num("failed") + num("errors?")
        if result != "OK" and failed == 0:
            failed = 1
        return passed, failed
    if result == "SKIP":
        return 0, 0
    return (1, 0) if result in ("OK", "EXPECTEDFAIL") else (0, 1)


def main(paths):
    total_p = total_f = 0
    for path in paths:
        try:
            lines = open(path).read().splitlines()
        except OSError as e:
            print(f"{path}: {e}")
            total_f += 1
            continue
        for line in lines:
            if not line.strip():
                continue
            entry = json.loads(line)
            p, f = count(entry)
            total_p += p
            total_f += f
            build = path.split("/meson-logs")[0].rsplit("/", 1)[-1]
            print(f"  {build:12s} {entry['name']:28s} {entry['result']:8s} {p} passed, {f} failed")
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f or total_p == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
