"""`tumorbench synthesize`: add synthetic tumors to one CT (NIfTI in, NIfTI + params out)."""
from __future__ import annotations

import argparse

EPILOG = """\
examples:
  tumorbench synthesize ct.nii.gz liver.nii.gz --organ liver --method hu --out out/liver_tumor
  tumorbench synthesize ct.nii.gz labels.nii.gz --label 1 --organ kidney --size large --seed 3 --out out/k
  tumorbench synthesize ct.nii.gz seg.nii.gz --organ pancreas --method difftumor --checkpoint ckpt/ --out out/p
  tumorbench synthesize ct.nii.gz kidney.nii.gz --organ kidney --method cellular --seed 1 --out out/k_ca
  tumorbench synthesize ct.nii.gz liver.nii.gz --replay out/liver_tumor/params.json --out out/again

outputs (written atomically): OUT/ct.nii.gz (same grid, affine and dtype as the input CT),
OUT/tumor.nii.gz (uint8 0/1), OUT/params.json (method, seed, sha256 of the inputs and every
tumor's params). --replay reproduces OUT bit for bit on CPU (hu and difftumor) from the same inputs.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synthesize", help="add synthetic tumors (Hu et al., DiffTumor, cellular automaton, plug-ins) to a CT",
        description="Add K synthetic tumors to a CT inside its organ mask. Any orientation and voxel "
                    "spacing (taken from the NIfTI header); the CT must be in HU.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ct", help="CT NIfTI in HU")
    parser.add_argument("organ_mask", help="organ mask NIfTI on the CT grid (binary, or multi-label with --label)")
    parser.add_argument("--organ", choices=["liver", "pancreas", "kidney"],
                        help="organ variant (placement rules); required unless --replay")
    parser.add_argument("--label", type=int, help="organ value in a multi-label mask")
    parser.add_argument("--method", default="hu",
                        help="a registered generator: hu (default), difftumor, cellular, or a plug-in's "
                             "(`tumorbench generators list`)")
    parser.add_argument("--checkpoint", help="generator weights folder (difftumor)")
    parser.add_argument("--size", default="random",
                        choices=["tiny", "small", "medium", "large", "mix", "early", "random"],
                        help="tumor size type; early = tiny or small, mix = several of every size (hu only), "
                             "random = the method's own mix (default; hu: 0.2 each of tiny/small/medium/large/"
                             "mix, difftumor: early 0.8 / medium 0.1 / large 0.1)")
    parser.add_argument("--count", type=int, default=1, help="number of tumors to add (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device for model-based generators (default cpu)")
    parser.add_argument("--replay", metavar="PARAMS_JSON",
                        help="reproduce an earlier output bit for bit from its params.json (same inputs, "
                             "checked by content hash; difftumor also needs the same --checkpoint)")
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    parser.set_defaults(func=synthesize_entry)


def synthesize_entry(args) -> int:
    from benchmark.errors import InputError
    from benchmark.synthesize import synthesize_files

    if args.organ is None and args.replay is None:
        raise InputError("--organ is required (liver, pancreas or kidney) unless --replay is given")
    out = synthesize_files(args.ct, args.organ_mask, args.out, organ=args.organ, method=args.method,
                           label=args.label, checkpoint=args.checkpoint, size=args.size, count=args.count,
                           seed=args.seed, device=args.device, replay=args.replay)
    print(f"wrote {out}/ct.nii.gz, tumor.nii.gz, params.json")
    return 0
