#!/usr/bin/env python3
"""Regenerates data/carbon-hourly/ from the curated hourly carbon-intensity
folder (one `utc_hour,gco2_per_kwh` CSV per grid-year, 8,760 rows each, with a
README giving each file's source, licence, attribution and transformation):

    scripts/derive-carbon-hourly.py ../shared/data/carbon-hourly

Each bundled file is the source file unchanged, with a `#` header carrying its
grid, year, source, licence and required attribution; the folder's README is
copied beside the files (ODbL asks for the notice to travel with the data).
Nothing is downloaded. Do not refresh the Electricity Maps files from a newer
Electricity Maps download without re-checking its terms (see the README).
"""
import pathlib, shutil, sys

EM = ("Contains data from Electricity Maps (https://www.electricitymaps.com), hourly carbon-intensity "
      "datasets for 2023 (data-portal release of January 2024), licensed under the Open Database License "
      "(ODbL) v1.0, https://opendatacommons.org/licenses/odbl/1.0/ . Individual contents: Database Contents "
      "License (DbCL) v1.0. Modified: reduced to the life-cycle carbon-intensity column, timestamps reformatted.")
EIA = ("Hourly generation by fuel: U.S. Energy Information Administration, Form EIA-930 (Hourly Electric Grid "
       "Monitor), 2022, public domain; as extracted in HewlettPackard/dc-rl (SustainDC), MIT License, Copyright "
       "(c) 2024 Hewlett Packard Enterprise. Carbon intensity computed with IPCC AR5 (2014) life-cycle emission factors.")
FAMILIES = {
    "electricitymaps": ("Electricity Maps data portal, 2023 hourly, life-cycle (LCA), consumption-based",
                        "ODbL 1.0 (database), DbCL 1.0 (contents)", EM),
    "eia930": ("US EIA-930 hourly net generation by fuel (2022) x IPCC AR5 life-cycle factors, production-based; phase +-1 h",
               "public domain (EIA, 17 U.S.C. 105) + MIT (dc-rl extraction)", EIA),
}

def main(src: pathlib.Path) -> None:
    out = pathlib.Path(__file__).resolve().parent.parent / "data" / "carbon-hourly"
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.csv")):
        family, rest = f.stem.split("_", 1)
        grid, year = rest.rsplit("_", 1)
        source, licence, attribution = FAMILIES[family]
        lines = f.read_text().splitlines()
        assert lines[0] == "utc_hour,gco2_per_kwh" and len(lines) == 8761, (f, len(lines))
        header = [
            f"# joulebench hourly carbon-intensity profile, version 1: {grid} {year} ({family})",
            f"# source: {source}; copied unchanged from {f.name} of the curated carbon-hourly folder",
            f"# licence: {licence}",
            f"# attribution: {attribution}",
            "# details (method, gaps filled, provider-estimated hours): README.md in this folder",
            "# regenerate with scripts/derive-carbon-hourly.py",
        ]
        (out / f.name).write_text("\n".join(header + lines) + "\n")
    shutil.copyfile(src / "README.md", out / "README.md")

if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/carbon-hourly"))
