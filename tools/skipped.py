#!/usr/bin/env python3
"""Lists the tests ctest skipped, and why, from the JUnit files of the last runs.

    tools/skipped.py BUILD_DIR...      (make test: build build-asan build-tsan)

A test that cannot run exits with 77 (TEST_SKIP in tests/test.h): ctest reports it as
skipped (status "notrun"), and its "SKIP: reason" line says why. A test that ran but had
to leave part of its checks out prints "SKIP: reason" for that part and still passes:
listed apart as partly skipped. Reads BUILD_DIR/ctest-junit.xml (the Makefile's ctest
--output-junit); always exits 0, it only reports."""
import os
import sys
import xml.etree.ElementTree as ET


def reasons(case):
    out = case.findtext("system-out") or ""
    lines = [l.strip() for l in out.splitlines() if l.strip().startswith("SKIP")]
    return lines or ["(no SKIP line printed)"]


def main(dirs):
    skipped, partly, missing = [], [], []
    for d in dirs:
        path = os.path.join(d, "ctest-junit.xml")
        if not os.path.exists(path):
            missing.append(d)
            continue
        for case in ET.parse(path).getroot().iter("testcase"):
            name, status = case.get("name"), case.get("status")
            if status == "notrun" and case.find("skipped") is not None:
                skipped.append((d, name, reasons(case)))
            elif status == "run" and any(l.startswith("SKIP") for l in reasons(case)):
                partly.append((d, name, reasons(case)))
    print("== skipped tests (could not run): %d" % len(skipped))
    for d, name, why in skipped:
        print("  %-11s %s: %s" % (d, name, "; ".join(l.removeprefix("SKIP: ") for l in why)))
    print("== partly skipped tests (passed; these checks were left out): %d" % len(partly))
    for d, name, why in partly:
        print("  %-11s %s: %s" % (d, name, "; ".join(why)))
    for d in missing:
        print("  (%s: no ctest-junit.xml, that pass did not run)" % d)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["build"]))
