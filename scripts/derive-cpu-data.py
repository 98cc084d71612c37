#!/usr/bin/env python3
"""Derives data/cpu-tdp.csv from the codecarbon wheel (MIT licence).

Usage: pip download --no-deps codecarbon==3.3.2 -d /tmp/cc && unzip -q /tmp/cc/*.whl -d /tmp/cc/x
       scripts/derive-cpu-data.py /tmp/cc/x/codecarbon > data/cpu-tdp.csv
joulebench reads only the CSV (bundled into the binary); it never imports codecarbon.
Rows are codecarbon's `Name,TDP` as given (TDP in watts, per package), sorted by name, with
exact duplicates dropped; no thread counts exist in that table (see src/meter/cpu_power.rs for
where joulebench gets them).
"""
import csv, sys, pathlib

root = pathlib.Path(sys.argv[1])
rows = {}
skipped = []
with open(root / "data/hardware/cpu_power.csv", encoding="utf-8-sig") as f:
    for r in csv.DictReader(f):
        name, tdp = r["Name"].strip(), r["TDP"].strip()
        try:
            rows.setdefault(name, float(tdp))
        except ValueError:
            # A handful of rows hold two figures run together ("27.29.5" for
            # 27.2-29.5 W); they are old desktop parts: skip them, counted below.
            skipped.append(name)
print("# joulebench CPU rated-power table, version 1")
print("# source: codecarbon 3.3.2, codecarbon/data/hardware/cpu_power.csv in the PyPI wheel")
print("#   (vendors' published TDP per package, scraped by the codecarbon project).")
print("# licence: MIT, Copyright (c) 2019 Mila, BCG Gamma, CometML, Haverford College;")
print("#   Copyright (c) 2023 Code Carbon NGO.")
print("# transformation: names trimmed, exact duplicate names dropped (first kept), sorted;")
print(f"#   {len(skipped)} rows whose TDP is not one number were left out.")
print("# regenerate with scripts/derive-cpu-data.py")
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(["name", "tdp_w"])
for name in sorted(rows):
    t = rows[name]
    out.writerow([name, int(t) if t == int(t) else t])
