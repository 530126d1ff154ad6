"""`tumorbench generators list|show|train|import-official`: the registered tumor generators, their
metadata, training DiffTumor's two stages on a dataset, and converting the published DiffTumor weights."""
from __future__ import annotations

import argparse
import json

EPILOG = """\
examples:
  tumorbench generators list
  tumorbench generators show cellular
  tumorbench generators show hu --json
  tumorbench generators train autoencoder data/liver --out ckpt/difftumor --fold 0
  tumorbench generators train diffusion data/liver --autoencoder ckpt/difftumor --early --out ckpt/difftumor --fold 0
  tumorbench generators import-official --autoencoder AutoencoderModel.ckpt --early liver_early.pt \\
      --organ liver --out ckpt/difftumor-official

Generators are entry points of the group 'tumorbench.generators'; a package registers its own in
its pyproject.toml (see docs/generators.md). Each registered name can be a grid regime.
The former command 'generator' (train-autoencoder, train-diffusion, import-official) is now
`tumorbench generators train autoencoder|diffusion` and `tumorbench generators import-official`.
"""

EPILOG_AE = """examples:
  tumorbench generators train autoencoder data/liver --out ckpt/difftumor --preset tiny
  tumorbench generators train autoencoder data/atlas --out ckpt/difftumor --preset paper --device cuda

Killing and re-running the same command resumes from ckpt/.../train_state/autoencoder.pt."""

EPILOG_DIFF = """examples:
  tumorbench generators train diffusion data/liver --autoencoder ckpt/difftumor --early --out ckpt/difftumor
  tumorbench generators train diffusion data/liver --autoencoder ckpt/difftumor --non-early --preset paper \\
      --device cuda --fold 0 --out ckpt/difftumor

Trains on crops around the real tumors of the labeled cases (early: radius <= 10 mm). Use the
result with `tumorbench synthesize --method difftumor --checkpoint ckpt/difftumor`."""

EPILOG_IMPORT = """examples:
  tumorbench generators import-official --autoencoder AutoencoderModel.ckpt --early liver_early.pt \\
      --non-early liver_noearly.pt --organ liver --out ckpt/difftumor-official
  tumorbench synthesize ct.nii.gz liver.nii.gz --organ liver --method difftumor \\
      --checkpoint ckpt/difftumor-official --out synth/

The published weights (MrGiovanni/DiffTumor on Hugging Face, see its README) are CC BY-NC-ND 4.0:
download them yourself; TumorBench never ships them. The EMA denoiser weights are kept, the
discriminators and LPIPS dropped; every key and shape is checked before anything is written."""

ORGAN_CHOICES = ("liver", "pancreas", "kidney")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generators", help="tumor generators: list, show, train (DiffTumor), import-official (published weights)",
        description="Registered tumor generators (built-in and plug-ins): name, display name, licence,\n"
                    "weights, replay, devices. `train` trains DiffTumor's models on a dataset;\n"
                    "`import-official` converts the published DiffTumor weights.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = parser.add_subparsers(dest="generators_what", metavar="<list|show|train|import-official>")
    inner.add_parser("list", help="one line per registered generator").set_defaults(func=list_entry)
    show = inner.add_parser("show", help="metadata and keyword arguments of one generator")
    show.add_argument("name", help="registered generator name")
    show.add_argument("--json", action="store_true", help="print the metadata as JSON")
    show.set_defaults(func=show_entry)
    _register_train(inner)
    _register_import(inner)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _register_train(inner) -> None:
    train = inner.add_parser(
        "train", help="train DiffTumor's models on a dataset: autoencoder, then diffusion",
        description="Train DiffTumor: stage 1 a 3D VQGAN autoencoder, stage 2 latent diffusion inpainting "
                    "models (early T=4 and non-early T=200) per organ. Presets: tiny (32^3 crops, CPU, minutes) "
                    "and paper (96^3 crops, official sizes, GPU).")
    stages = train.add_subparsers(dest="train_what", metavar="<autoencoder|diffusion>")
    ae = stages.add_parser("autoencoder", help="stage 1: train the VQGAN autoencoder",
                           description="Train the 3D VQGAN autoencoder on crops of all cases of DATASET.",
                           epilog=EPILOG_AE, formatter_class=argparse.RawDescriptionHelpFormatter)
    _training_options(ae)
    ae.set_defaults(func=train_autoencoder_entry)
    diff = stages.add_parser("diffusion", help="stage 2: train an early or non-early diffusion model",
                             description="Train a latent diffusion inpainting model for one organ and tumor stage.",
                             epilog=EPILOG_DIFF, formatter_class=argparse.RawDescriptionHelpFormatter)
    _training_options(diff)
    diff.add_argument("--autoencoder", required=True, metavar="CKPT",
                      help="checkpoint folder (or its autoencoder.pt) of the trained autoencoder")
    diff.add_argument("--organ", choices=ORGAN_CHOICES, help="organ the model is for (default: the dataset's organ)")
    stage = diff.add_mutually_exclusive_group(required=True)
    stage.add_argument("--early", dest="stage", action="store_const", const="early",
                       help="tiny/small tumors: T=4, 4-step DDPM sampling")
    stage.add_argument("--non-early", dest="stage", action="store_const", const="nonearly",
                       help="medium/large tumors: T=200, 50-step DDIM sampling")
    diff.set_defaults(func=train_diffusion_entry)
    train.set_defaults(func=lambda args: train.print_help() or 2)


def _register_import(inner) -> None:
    imp = inner.add_parser("import-official", help="convert the published DiffTumor weights to a checkpoint folder",
                           description="Convert the published DiffTumor files (AutoencoderModel.ckpt and an organ's "
                                       "<organ>_early.pt / <organ>_noearly.pt) into a TumorBench checkpoint folder "
                                       "(architecture 'official').",
                           epilog=EPILOG_IMPORT, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("--autoencoder", required=True, metavar="CKPT", help="the published AutoencoderModel.ckpt")
    imp.add_argument("--early", metavar="PT", help="the organ's published <organ>_early.pt (T=4)")
    imp.add_argument("--non-early", dest="non_early", metavar="PT",
                     help="the organ's published <organ>_noearly.pt (T=200)")
    imp.add_argument("--organ", required=True, choices=ORGAN_CHOICES)
    imp.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder to write")
    imp.set_defaults(func=import_official_entry)


def _training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="canonical dataset folder (dataset.json, cases.csv)")
    parser.add_argument("--out", required=True, metavar="CKPT", help="checkpoint folder to write (created)")
    parser.add_argument("--preset", choices=("tiny", "paper"), default="tiny", help="model/crop sizes (default tiny)")
    parser.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--fold", type=int, help="train only on this fold's training cases (default: all cases); the "
                                                 "JSON records the case ids, and a grid refuses weights trained on a "
                                                 "test case of a cell's fold")
    parser.add_argument("--arch", choices=("monai", "official"), default="monai",
                        help="monai: our VQGAN / MONAI U-Net sized by --preset; official: the published DiffTumor "
                             "architecture (--preset then sets only the training) (default monai)")
    parser.add_argument("--init", metavar="CKPT", help="start from this checkpoint folder's weights (same --arch), "
                                                       "e.g. the output of import-official, to fine-tune them")


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def list_entry(args) -> int:
    from synthesis.registry import describe_all

    rows = describe_all()
    print(f"{'name':<12} {'weights':<8} {'replay':<7} {'devices':<9} {'from':<24} display name / licence")
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<12} {'?':<8} {'?':<7} {'?':<9} {row['distribution']:<24} BROKEN: {row['error']}")
            continue
        print(f"{row['name']:<12} {_yes(row['needs_weights']):<8} {_yes(row['replayable']):<7} "
              f"{','.join(row['devices']):<9} {row['distribution']:<24} {row['display_name']} ({row['licence']})")
    return 0


def show_entry(args) -> int:
    from benchmark.errors import InputError
    from synthesis.errors import SynthesisInputError
    from synthesis.registry import describe

    try:
        info = describe(args.name)
    except SynthesisInputError as exc:
        raise InputError(str(exc)) from exc
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key in ("name", "display_name", "description", "licence", "needs_weights", "weights_source",
                "replayable", "devices", "entry_point", "distribution"):
        value = info[key]
        value = _yes(value) if isinstance(value, bool) else ", ".join(value) if isinstance(value, list) else value
        print(f"{key + ':':<16} {value or '-'}")
    print("kwargs (grid: [generators." + info["name"] + "]):")
    for key, spec in info["kwargs"].items():
        default = f" = {spec['default']}" if spec["default"] is not None else ""
        print(f"  {key}{default}" + (f"  -- {spec['help']}" if spec["help"] else ""))
    return 0


def train_autoencoder_entry(args) -> int:
    from benchmark.generators import train_autoencoder_on_dataset

    path = train_autoencoder_on_dataset(args.dataset, args.out, preset=args.preset, steps=args.steps,
                                        device=args.device, fold=args.fold, arch=args.arch, init=args.init)
    print(f"autoencoder written to {path}")
    return 0


def train_diffusion_entry(args) -> int:
    from benchmark.generators import train_diffusion_on_dataset

    path = train_diffusion_on_dataset(args.dataset, args.autoencoder, args.out, stage=args.stage, organ=args.organ,
                                      preset=args.preset, steps=args.steps, device=args.device, fold=args.fold,
                                      arch=args.arch, init=args.init)
    print(f"diffusion model written to {path}")
    return 0


def import_official_entry(args) -> int:
    from benchmark.generators import import_official_weights

    out = import_official_weights(args.autoencoder, args.organ, args.out, early=args.early, non_early=args.non_early)
    print(f"official DiffTumor weights converted into {out} (use it as --checkpoint {out})")
    return 0
