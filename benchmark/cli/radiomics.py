"""`tumorbench radiomics`: radiomics realism analysis of real vs synthetic tumors."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  # Hu tumors vs real ones on a phantom liver dataset, 40 real tumors, 2 workers
  tumorbench radiomics data/phantom/liver --generators hu --n 40 --out results/realism --jobs 2

  # three organs (cross-organ similarity of early tumors), Hu + DiffTumor, logged to MLflow
  tumorbench radiomics data/liver data/pancreas data/kidney --generators hu,difftumor \\
      --checkpoint liver=ckpt/liver --checkpoint pancreas=ckpt/pancreas --checkpoint kidney=ckpt/kidney \\
      --n 100 --out results/realism --experiment realism

outputs (in --out): tumors.csv + tumors/ (ROI crops), features.csv, extractor_config.json,
realism_scores.csv (per organ and generator: Frechet radiomics distance and classifier two-sample
AUC with permutation p-values, and the same scores at a matched size next to their real-vs-real
noise floor, mean and SD over subsamples), effect_sizes.csv, effect_sizes_top.csv, embedding.png,
distributions_<organ>_<generator>.png, and with several organs cross_organ.csv,
cross_organ_frechet.csv, cross_organ_embedding.png; summary.json."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "radiomics", help="radiomics realism scores: real vs synthetic tumors",
        description=("Collect real tumors (label 2 components) and size-matched synthetic ones (generators run "
                     "on healthy cases), extract pyradiomics features (shape 16, GLCM 24, GLRLM 16, GLSZM 16, "
                     "NGTDM 5, GLDM 14 = 91) and compare the sets."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", metavar="DATASET", help="canonical dataset folder(s), one organ each")
    parser.add_argument("--generators", default="hu", help="comma-separated generator names, '' for real only (default: hu)")
    parser.add_argument("--checkpoint", action="append", metavar="ORGAN=DIR", help="generator weights per organ (difftumor)")
    parser.add_argument("--n", type=int, default=None, help="real tumors per dataset (default: all); as many synthetic per generator")
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.add_argument("--experiment", default=None, help="also log an MLflow run (tag tumorbench.kind=realism) in this experiment")
    parser.add_argument("--seed", type=int, default=0, help="random seed (tumor choice, generators, CV)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel feature-extraction processes")
    parser.add_argument("--firstorder", action="store_true", help="also extract the 18 first-order features")
    parser.add_argument("--resample-mm", type=float, default=1.0, help="isotropic resampling before extraction, 0 = none (default 1.0)")
    parser.add_argument("--embedding", choices=["auto", "pca", "tsne"], default="auto", help="2-D embedding method")
    parser.add_argument("--early-only", action="store_true",
                        help="only real tumors of radius <= 10 mm (and their tiny/small synthetic matches)")
    parser.add_argument("--permutations", type=int, default=200,
                        help="label permutations per p-value (default 200; 0 = no p-values)")
    parser.add_argument("--subsamples", type=int, default=50,
                        help="random real splits for the size-matched noise floor (default 50)")
    parser.add_argument("--device", default="cpu", help="device for generators (cpu, cuda)")
    parser.set_defaults(func=radiomics_entry)


def radiomics_entry(args) -> int:
    from benchmark.realism_collect import parse_checkpoints
    from benchmark.realism_run import run_radiomics

    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    summary = run_radiomics(args.datasets, generators, args.n, args.out, seed=args.seed, jobs=args.jobs,
                            checkpoints=parse_checkpoints(args.checkpoint), device=args.device,
                            firstorder=args.firstorder, resample_mm=args.resample_mm or None,
                            embedding=args.embedding, experiment=args.experiment, early_only=args.early_only,
                            n_perm=args.permutations, n_repeats=args.subsamples)
    for row in summary["scores"]:
        print(f"{row['organ']:9s} {row['generator']:11s} n={row['n_real']}/{row['n_other']}  "
              f"frechet_pca={row['frechet_pca']:.2f} (p={row['frechet_pca_p']:.3g})  "
              f"c2st_auc={row['c2st_auc']:.3f} (p={row['c2st_auc_p']:.3g})  at {row['n_matched']}/{row['n_matched']}: "
              f"frechet_pca {row.get('frechet_pca_matched', float('nan')):.2f} "
              f"vs floor {row.get('frechet_pca_floor', float('nan')):.2f}")
    print(f"results in {args.out}")
    return 0
