"""Summarises pip-audit's JSON report so that "nothing could be checked" never reads as "no
vulnerabilities": pip-audit prints "No known vulnerabilities found" even when it reached no
advisory data and skipped every package. Report only: always exits 0.

    python3 requirements/audit_report.py REPORT.json
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as err:
        print(f"audit: NOT RUN: pip-audit wrote no report ({err})")
        return
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    checked = [d for d in deps if not d.get("skip_reason")]
    found = [(d["name"], d["version"], v) for d in checked for v in d.get("vulns", [])]
    if deps and not checked:
        print(f"audit: NOT RUN: none of the {len(deps)} locked packages could be checked; pip-audit could not "
              f"reach the advisory data (PyPI's JSON API / OSV) from this machine. First reason: "
              f"{skipped[0]['skip_reason']}")
        return
    print(f"audit: {len(checked)} packages checked, {len(skipped)} skipped, {len(found)} known vulnerabilities")
    for name, version, vuln in found:
        fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed version"
        print(f"  {name} {version}: {vuln.get('id')} (fixed in: {fixes})")
    for dep in skipped:
        print(f"  skipped {dep['name']}: {dep['skip_reason']}")


if __name__ == "__main__":
    main(sys.argv[1])
