#!/usr/bin/env python3
"""Derives data/carbon-intensity.csv from the codecarbon wheel (MIT licence).

Usage: pip download --no-deps codecarbon==3.3.2 -d /tmp/cc && unzip -q /tmp/cc/*.whl -d /tmp/cc/x
       scripts/derive-impact-data.py /tmp/cc/x/codecarbon > data/carbon-intensity.csv
joulebench reads only the CSV (bundled into the binary); it never imports codecarbon.
"""
import csv, json, sys, pathlib

root = pathlib.Path(sys.argv[1])
mix = json.loads((root / "data/private_infra/global_energy_mix.json").read_text())
out = csv.writer(sys.stdout, lineterminator="\n")
print("# joulebench grid carbon intensity table, version 1")
print("# countries: codecarbon 3.3.2 data/private_infra/global_energy_mix.json (Our World in Data,")
print("#   from Ember and the Energy Institute; per-country year as given); cloud regions:")
print("#   codecarbon 3.3.2 data/cloud/impact.csv (providers' published figures, URL per row).")
print("# world: Ember Global Electricity Review 2024, world average 2023 (481 gCO2e/kWh).")
print("# licence: codecarbon is MIT; Our World in Data and Ember data are CC BY 4.0.")
print("# regenerate with scripts/derive-impact-data.py")
out.writerow(["code", "name", "kind", "g_co2e_per_kwh", "year", "source"])
out.writerow(["WORLD", "World average", "world", "481", "2023", "Ember Global Electricity Review 2024"])
for code, v in sorted(mix.items()):
    out.writerow([code, v["country_name"], "country", v["carbon_intensity"], v["year"], "OWID/Ember via codecarbon 3.3.2"])
with open(root / "data/cloud/impact.csv", encoding="utf-8-sig") as f:
    for r in csv.DictReader(f):
        name = ", ".join(x for x in [r["regionName"], r["city"], r["country_name"]] if x)
        out.writerow([f'{r["provider"]}:{r["region"]}', name, "cloud", r["impact"], "", r["source"]])
