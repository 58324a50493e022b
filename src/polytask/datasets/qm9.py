"""QM9: 12 quantum-chemical properties of 130,831 small organic molecules (regression).

Source: Ramakrishnan et al. (2014), "Quantum chemistry structures and properties of 134
kilo molecules" (Scientific Data 1); the CSV files shipped inside the PyPI package ``qm9pack``
(``qm9pack/data/qm9_part{1,2,3}.csv``), read directly (``qm9pack.get_data`` imports
``pkg_resources``, which recent setuptools no longer has, so the package is never imported).
Licence: qm9pack is MIT; the QM9 data are CC BY 4.0 (figshare).
Tasks: 12 regressions (the usual mu, alpha, HOMO, LUMO, gap, R2, ZPVE, U0, U, H, G, Cv), in the
package's units (Debye, bohr^3, hartree, bohr^2, cal/mol K); ``targets`` picks a subset.
Features: from the SMILES string with RDKit (no 3D geometry): ``descriptors`` (RDKit's 2D
descriptor list, constant and non-finite columns dropped), ``morgan`` (Morgan/ECFP bit vector,
radius 2, ``n_bits`` bits) or ``both``. Molecules RDKit cannot parse are dropped.
Rows: ``n_molecules`` drawn at random (seeded) for quick runs; None uses all 130,831.
Default split: none fixed; seeded random splits. QM9 is the benchmark where MTL is known to
suffer negative transfer (the energies U0/U/H/G are nearly collinear, the orbital energies are not).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from polytask.datasets.base import Dataset, package_dir, require_file, subsample
from polytask.errors import PolytaskError

SOURCE = "Ramakrishnan et al. (2014), QM9; CSV files shipped by the package qm9pack"
LICENCE = "MIT (qm9pack); QM9 data CC BY 4.0"
#: Short task name -> CSV column.
TARGETS: dict[str, str] = {
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "gap": "HOMO_LUMO_gap_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "u0": "InternalEnergy_0K_au",
    "u298": "InternalEnergy_298K_au",
    "h298": "Enthalphy_298K_au",
    "g298": "GibbsFreeEnergy_298K_au",
    "cv": "Heatcapacity_Cv_cal_mol_K",
}
FEATURE_SETS = ("descriptors", "morgan", "both")


def read_qm9_table(columns: list[str]) -> pd.DataFrame:
    """The SMILES and ``columns`` of all three CSV parts, in the package's order."""
    root = package_dir("qm9pack", "qm9") / "data"
    parts = [require_file(root / f"qm9_part{i}.csv", "qm9") for i in (1, 2, 3)]
    return pd.concat([pd.read_csv(p, usecols=["SMILES", *columns]) for p in parts], ignore_index=True)


def molecule_features(smiles: list[str], features: str = "descriptors", n_bits: int = 256
                      ) -> tuple[pd.DataFrame, np.ndarray]:
    """RDKit features of each SMILES; returns the feature table and a mask of parsed molecules."""
    package_dir("rdkit", "qm9")
    from rdkit import Chem, RDLogger
    from rdkit.Chem import Descriptors, rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    ok = np.array([m is not None for m in mols])
    mols = [m for m in mols if m is not None]
    blocks = []
    if features in ("descriptors", "both"):
        names = [n for n, _ in Descriptors.descList]
        fns = [f for _, f in Descriptors.descList]
        values = np.empty((len(mols), len(fns)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, m in enumerate(mols):
                for j, f in enumerate(fns):
                    try:
                        values[i, j] = f(m)
                    except Exception:  # a descriptor RDKit cannot compute for this molecule
                        values[i, j] = np.nan
        desc = pd.DataFrame(values, columns=[f"rd_{n}" for n in names])
        desc = desc.replace([np.inf, -np.inf], np.nan)
        keep = [c for c in desc.columns if desc[c].notna().mean() > 0.99 and desc[c].nunique(dropna=True) > 1]
        blocks.append(desc[keep].fillna(desc[keep].median()))
    if features in ("morgan", "both"):
        gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=n_bits)
        bits = np.stack([gen.GetFingerprintAsNumPy(m) for m in mols]).astype(np.float32)
        blocks.append(pd.DataFrame(bits, columns=[f"morgan_{i}" for i in range(n_bits)]))
    return pd.concat(blocks, axis=1), ok


def load_qm9(n_molecules: int | None = 2000, features: str = "descriptors", targets: list[str] | None = None,
             n_bits: int = 256, seed: int = 0) -> Dataset:
    """QM9 with RDKit features of a seeded subset of ``n_molecules`` (None: all)."""
    if features not in FEATURE_SETS:
        raise PolytaskError(f"data set 'qm9': unknown features '{features}' (choose from {', '.join(FEATURE_SETS)})")
    names = list(TARGETS) if targets is None else list(targets)
    unknown = [t for t in names if t not in TARGETS]
    if unknown:
        raise PolytaskError(f"data set 'qm9': unknown target '{unknown[0]}' (choose from {', '.join(TARGETS)})")
    table = read_qm9_table([TARGETS[t] for t in names])
    table = table.iloc[subsample(len(table), n_molecules, seed)].reset_index(drop=True)
    feats, ok = molecule_features(table["SMILES"].tolist(), features, n_bits)
    table = table[ok].reset_index(drop=True)
    frame = pd.concat([feats.reset_index(drop=True), table[[TARGETS[t] for t in names]].set_axis(names, axis=1)], axis=1)
    return Dataset(
        "qm9", frame, names, list(feats.columns), kinds={t: "regression" for t in names},
        info={"source": SOURCE, "licence": LICENCE, "tasks": f"{len(names)} regressions: {', '.join(names)}",
              "preprocessing": f"RDKit {features} features from SMILES"
                               + (f" ({n_bits}-bit Morgan, radius 2)" if features != "descriptors" else "")
                               + f"; {int((~ok).sum())} unparsable molecules dropped",
              "default_split": "random (seeded)", "rows": len(frame)},
    )
