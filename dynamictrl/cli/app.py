"""Animate in a web page (Gradio): the same generation as scripts/infer.py and scripts/sample_long.py.

Examples:
  python scripts/app.py                                   # the embedded tiny model on http://127.0.0.1:7860
  python scripts/app.py --model /models/CogVideoX1.5-5B-I2V --transformer /models/DynamiCtrl-5B/transformer \\
      --offload model --pose-models ~/models/DWPose --host 0.0.0.0 --port 7860

Each generation builds the command line of dynamictrl-infer (or dynamictrl-sample-long when a table of prompts is
given), parses it with that command's own parser and runs their animate() on the model loaded once at start; the
page shows that command, which gives the same video. One generation runs at a time; a bad input is one message in
the page; results live in a temporary folder removed when the app stops. Nothing is downloaded, analytics are off.
The generate function is the API endpoint "/generate" (gradio_client).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from dynamictrl.acceleration.runtime import runtime_argv
from dynamictrl.assets import DEMO_DIR
from dynamictrl.cli import ArgumentParser, existing_dir, run_cli
from dynamictrl.cli.animation import add_model_args, embedded_model_dir
from dynamictrl.errors import UserError

POSE_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif", ".npz", ".json")
KEEP_RESULTS = 8  # generation folders kept for downloads; older ones are deleted
# CLI flags in error messages, as the page names them
FIELDS = {"--ref": "Reference image", "--pose": "Pose", "--mask": "Person mask", "--prompts-file": "Prompts table"}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    parser.add_argument("--pose-models", type=Path, help="DWPose ONNX folder: raw motion videos and 'mask the person'")
    parser.add_argument("--sam-dir", type=Path, help="local SAM folder for 'mask the person' (else the pose fallback)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--max-pose-frames", type=int, default=600, help="longest pose video accepted (600 frames)")
    parser.add_argument("--max-upload-mb", type=int, default=200, help="largest upload accepted (200 MB)")
    return parser


# ---------------------------------------------------------------- the command line of a generation


def script_parser(script: str) -> argparse.ArgumentParser:
    """``scripts/<script>``'s own parser (so the shown command is exactly what that script parses)."""
    return importlib.import_module(f"dynamictrl.cli.{Path(script).stem}").build_parser()


def model_argv(app: argparse.Namespace) -> list[str]:
    """The model flags of the app, as infer.py / sample_long.py take them."""
    argv = []
    for flag in ("model", "transformer", "device", "dtype", "pose_models"):
        if getattr(app, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(app, flag))]
    argv += runtime_argv(app)  # --memory, --offload, --compile, ...: the runtime flags the app runs with
    if app.scheduler != "dpm":
        argv += ["--scheduler", app.scheduler]
    return argv


@dataclass
class Request:
    """What the page sends, in the units of the command line (0 = the script's default)."""

    reference: str | None
    pose: str | None
    mask: str | None = None
    prompt: str = ""
    prompts: list[list] | None = None  # rows of (start frame, prompt)
    steps: int = 25
    guidance: float = 3.0
    seed: int = 42
    clip_frames: int = 0
    overlap: int = 1
    color_match: bool = True
    retarget: str = "auto"  # auto | on | off
    pose_style: str = "dwpose"
    max_frames: int = 0


def prompt_rows(rows) -> list[tuple[int, str]]:
    """The filled rows of the prompts table as (start frame, prompt), checked like a prompts file."""
    if rows is None:
        return []
    if isinstance(rows, dict):  # the table as the page sends it: {"headers": [...], "data": [[...], ...]}
        rows = rows.get("data") or []
    out = []
    for row in rows:
        start, text = (list(row) + ["", ""])[:2]
        if str(text or "").strip() == "" and str(start if start is not None else "").strip() == "":
            continue
        try:
            start = int(float(start))
        except (TypeError, ValueError):
            raise UserError(f"Prompts table: start frame {start!r}", "a whole number of frames, 0 first") from None
        if not str(text or "").strip():
            raise UserError(f"Prompts table: no prompt at frame {start}", "a prompt on every filled row")
        out.append((start, " ".join(str(text).split())))
    return out


def generation_command(request: Request, app: argparse.Namespace, out: Path, work: Path) -> tuple[str, list[str]]:
    """``(script, argv)`` of this request: infer.py, or sample_long.py with a prompts file when the table is used."""
    if not request.reference:
        raise UserError("no reference image", "upload a PNG or JPEG of the person")
    if not request.pose:
        raise UserError("no pose", "upload a pose video, a keypoints file (.npz/.json) or a raw motion video")
    # choices checked here: the script's parser would exit the server's worker instead of raising
    if request.retarget not in ("auto", "on", "off"):
        raise UserError(f"retarget {request.retarget!r}", "auto, on or off")
    if request.pose_style not in ("dwpose", "dynamictrl"):
        raise UserError(f"pose style {request.pose_style!r}", "dwpose or dynamictrl")
    argv = ["--ref", str(request.reference), "--pose", str(request.pose)]
    rows = prompt_rows(request.prompts)
    if rows:
        script = "sample_long.py"
        prompts_file = work / "prompts.txt"
        prompts_file.write_text("".join(f"{start}\t{text}\n" for start, text in rows), encoding="utf-8")
        argv += ["--prompts-file", str(prompts_file)]
    else:
        script = "infer.py"
        prompt = " ".join(request.prompt.split())
        argv += [f"--prompt={prompt}"] if prompt.startswith("-") else ["--prompt", prompt]  # not read as a flag
    argv += ["--out", str(out), *model_argv(app)]
    if request.mask:
        argv += ["--mask", str(request.mask)]
    argv += ["--steps", str(int(request.steps)), "--guidance", f"{float(request.guidance):g}"]
    argv += ["--seed", str(int(request.seed)), "--overlap", str(int(request.overlap))]
    if request.clip_frames:
        argv += ["--clip-frames", str(int(request.clip_frames))]
    if request.max_frames:
        argv += ["--max-frames", str(int(request.max_frames))]
    argv.append("--color-match" if request.color_match else "--no-color-match")
    if request.retarget != "auto":
        argv.append("--retarget" if request.retarget == "on" else "--no-retarget")
    argv += ["--pose-style", request.pose_style, "--save-frames", "--save-pose"]
    return script, argv


def command_name(script: str) -> str:
    """The installed command of ``scripts/<script>`` / ``tools/<script>``: infer.py -> dynamictrl-infer."""
    return "dynamictrl-" + Path(script).stem.replace("_", "-")


def reproduce_command(
    script: str, argv: list[str], renames: dict[str, str], prompts: list[tuple[int, str]], first: str | None = None
) -> str:
    """The shell command that gives the same video (installed commands: any folder, any install): ``argv`` with the
    app's own files ``renamed`` (e.g. its output to outputs/app.mp4), after the command ``first`` (the mask tool)."""
    shown = [renames.get(a, a) for a in argv]
    steps = [first] if first else []
    if "--prompts-file" in shown:
        shown[shown.index("--prompts-file") + 1] = "prompts.txt"
        fields = [str(x) for row in prompts for x in row]
        steps.append("printf '%s\\t%s\\n' " + shlex.join(fields) + " > prompts.txt")
    steps.append(shlex.join([command_name(script), *shown]))
    return " && \\\n  ".join(steps)


def refuse_bad_uploads(request: Request, max_pose_frames: int) -> None:
    """Refuse what is not an image / a pose file, and pose videos longer than the app accepts."""
    from dynamictrl.cli import read_image_arg

    if request.reference:
        read_image_arg("--ref", request.reference)
    if request.mask:
        read_image_arg("--mask", request.mask, mode="L")
    if request.pose:
        suffix = Path(request.pose).suffix.lower()
        if suffix not in POSE_SUFFIXES:
            raise UserError(f"--pose: a {suffix or 'suffix-less'} file", f"one of {', '.join(POSE_SUFFIXES)}")
        frames = video_frame_count(request.pose) if suffix not in (".npz", ".json") else None
        if frames is not None and frames > max_pose_frames:
            raise UserError(
                f"--pose: {frames} frames, too long for this app",
                f"at most {max_pose_frames}; cut the video, or run scripts/sample_long.py",
            )


def video_frame_count(path: str) -> int | None:
    """Frames of a video without decoding it (None if it is not a readable video: animate() names that)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
    except (av.FFmpegError, IndexError):
        return None


def field_message(err: UserError, uploads: tuple[str | None, ...] = ()) -> str:
    """The error as the page says it: field names for flags, file names for the app's copies of uploads."""
    text = str(err)
    for path in filter(None, uploads):
        text = text.replace(f"'{path}'", Path(path).name).replace(path, Path(path).name)
    for flag, field in FIELDS.items():
        if text.startswith(flag + " ") or text.startswith(flag + ":"):
            return field + text[len(flag) :]
    return text


# ---------------------------------------------------------------- the app


class Animator:
    """The model, loaded once, and the generation folders."""

    def __init__(self, app: argparse.Namespace):
        from dynamictrl.acceleration.runtime import runtime_from_args
        from dynamictrl.cli.animation import default_device, load_pipeline, parse_dtype

        self.app = app
        device = app.device or default_device()
        model = app.model if app.model is not None else embedded_model_dir()
        # the same load as animate()'s own, so its result does not depend on who loaded the model
        self.loaded = load_pipeline(
            model, app.transformer, device, parse_dtype(app.dtype, device), runtime_from_args(app), app.scheduler
        )
        self.root = Path(tempfile.mkdtemp(prefix="dynamictrl-app-"))
        self.count = 0
        self.lock = threading.Lock()  # one generation at a time, whatever the queue does
        self.pose_models = self._pose_models()
        if app.pose_models is None and self.pose_models is not None:  # from $DYNAMICTRL_DWPOSE_DIR: shown in commands
            app.pose_models = self.pose_models

    def _pose_models(self) -> Path | None:
        from dynamictrl.pose.dwpose import resolve_models_dir

        try:
            return resolve_models_dir(self.app.pose_models)
        except FileNotFoundError:
            return None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _new_folder(self) -> Path:
        self.count += 1
        folder = self.root / f"{self.count:05d}"
        folder.mkdir()
        for old in sorted(self.root.iterdir())[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def mask_person(self, reference: str, work: Path) -> tuple[Path, str]:
        """tools/make_masks.py on the reference: ``(mask path, its command)``."""
        from dynamictrl.cli import make_masks

        mask = work / "reference_mask.png"
        argv = [str(reference), "--out", str(mask), "--models-dir", str(self.pose_models)]
        if self.app.sam_dir is not None:
            argv += ["--sam-dir", str(self.app.sam_dir)]
        make_masks.main.__wrapped__(argv)  # unwrapped: a UserError reaches the page instead of stderr
        shown = [("reference_mask.png" if a == str(mask) else a) for a in argv]
        return mask, shlex.join([command_name("make_masks.py"), *shown])

    def run(self, request: Request, mask_the_person: bool = False) -> dict:
        """Generate; returns the output files and the command that reproduces them."""
        from dynamictrl.cli.animation import animate

        with self.lock:
            refuse_bad_uploads(request, self.app.max_pose_frames)
            work = self._new_folder()
            out = work / "result.mp4"
            mask_step = None
            if mask_the_person and not request.mask:
                if self.pose_models is None:
                    raise UserError("'mask the person' needs the DWPose models", "start the app with --pose-models")
                mask, mask_step = self.mask_person(request.reference, work)
                request.mask = str(mask)
            script, argv = generation_command(request, self.app, out, work)
            try:
                args = script_parser(script).parse_args(argv)
            except SystemExit as exit_:  # argparse already wrote why to the server log
                raise UserError(f"scripts/{script} refused these settings", "see the server log") from exit_
            animate(args, loaded=self.loaded)  # prints to the server log
            renames = {str(out): "outputs/app.mp4", str(work / "reference_mask.png"): "reference_mask.png"}
            command = reproduce_command(script, argv, renames, prompt_rows(request.prompts), mask_step)
            return {
                "video": str(out),
                "sheet": str(out.with_suffix(".png")),
                "pose": str(out.with_name(out.stem + "_pose.mp4")),
                "command": command,
            }


def build_app(app: argparse.Namespace, animator: Animator | None = None):
    """The Gradio page (``gr.Blocks``) over one :class:`Animator`."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no usage reports, no update check
    import gradio as gr

    animator = animator or Animator(app)
    tiny = app.model is None
    demo_prompt = (DEMO_DIR / "prompt.txt").read_text(encoding="utf-8").strip()
    demo_rows = [line.split("\t", 1) for line in (DEMO_DIR / "prompts.txt").read_text().splitlines() if "\t" in line]

    def generate(
        reference, pose, mask, mask_the_person, prompt, prompts, steps, guidance, seed, clip_frames, overlap,
        color_match, retarget, pose_style, max_frames, progress=gr.Progress(track_tqdm=True),  # noqa: B008
    ):  # fmt: skip
        try:
            request = settings(reference, pose, mask, prompt, prompts, steps, guidance, seed, clip_frames, overlap,
                               color_match, retarget, pose_style, max_frames)  # fmt: skip
            result = animator.run(request, bool(mask_the_person))
        except UserError as err:
            uploads = (_path(reference), _path(pose), _path(mask))
            raise gr.Error(field_message(err, uploads), title="Cannot animate this", print_exception=False) from None
        return result["video"], result["sheet"], result["pose"], result["command"]

    def settings(
        reference, pose, mask, prompt, prompts, steps, guidance, seed, clip_frames, overlap, color_match, retarget,
        pose_style, max_frames,
    ) -> Request:  # fmt: skip
        try:
            return Request(
                reference=_path(reference),
                pose=_path(pose),
                mask=_path(mask),
                prompt=str(prompt or ""),
                prompts=prompts,
                steps=int(steps or (10 if tiny else 25)),
                guidance=float(3.0 if guidance is None else guidance),
                seed=int(42 if seed is None else seed),
                clip_frames=int(clip_frames or 0),
                overlap=int(overlap or 1),
                color_match=bool(color_match),
                retarget=retarget or "auto",
                pose_style=pose_style or "dwpose",
                max_frames=int(max_frames or 0),
            )
        except (TypeError, ValueError) as err:  # an API call with a text where a number goes
            raise UserError(f"settings: {err}", "numbers for steps, guidance, seed, lengths and frames") from None

    with gr.Blocks(title="DynamiCtrl", analytics_enabled=False, delete_cache=(600, 3600)) as page:
        gr.Markdown(
            f"## DynamiCtrl: animate a person with a pose\nModel: `{animator.loaded.source}`"
            + (" (random weights: the result is noise)" if animator.loaded.random_weights else "")
        )
        with gr.Row():
            with gr.Column():
                reference = gr.Image(
                    label="Reference image", type="filepath", sources=["upload"], elem_id="reference", height=240
                )
                with gr.Accordion("Person mask (optional)", open=False):
                    mask = gr.Image(label="Person mask", type="filepath", sources=["upload"], image_mode="L")
                    mask_the_person = gr.Checkbox(
                        label="Mask the person (tools/make_masks.py)",
                        interactive=animator.pose_models is not None,
                        info=None if animator.pose_models else "needs the DWPose models: start with --pose-models",
                    )
                pose = gr.File(
                    label="Pose: rendered pose video, keypoints (.npz/.json) or raw motion video",
                    file_types=list(POSE_SUFFIXES),
                    elem_id="pose",
                )
                if animator.pose_models is None:
                    gr.Markdown("Raw motion videos need the DWPose models (start the app with `--pose-models DIR`).")
                prompt = gr.Textbox(label="Prompt", value=demo_prompt, lines=2)
                with gr.Accordion("Prompts over time (long videos): start frame -> prompt", open=False):
                    prompts = gr.Dataframe(
                        headers=["start frame", "prompt"],
                        datatype=["number", "str"],
                        type="array",
                        column_count=2,
                        row_count=2,
                        label="Prompts table (leave empty to use the prompt above)",
                    )
                with gr.Accordion("Settings", open=True):
                    steps = gr.Slider(1, 100, value=10 if tiny else 25, step=1, label="Steps", elem_id="steps")
                    guidance = gr.Slider(0.0, 10.0, value=3.0, step=0.5, label="Guidance (<= 1: off)")
                    seed = gr.Number(42, precision=0, label="Seed (clip k uses seed + k)")
                    with gr.Row():
                        clip_frames = gr.Number(0, precision=0, label="Clip length (k*4+1; 0: the model's)")
                        overlap = gr.Number(1, precision=0, minimum=1, label="Overlap")
                        max_frames = gr.Number(0, precision=0, label="Max frames (0: all)", elem_id="max_frames")
                    color_match = gr.Checkbox(True, label="Colour matching between clips")
                    retarget = gr.Radio(["auto", "on", "off"], value="auto", label="Retarget keypoints to the body")
                    pose_style = gr.Radio(["dwpose", "dynamictrl"], value="dwpose", label="Pose style")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(label="Result", elem_id="result", interactive=False, height=360)
                sheet = gr.Image(label="Reference | pose | result", type="filepath", interactive=False, height=360)
                pose_used = gr.Video(label="Pose video used (after fitting)", interactive=False, height=240)
                command = gr.Textbox(
                    label="Reproduce (from the repository root)",
                    lines=3,
                    max_lines=12,
                    buttons=["copy"],
                    elem_id="command",
                )
        gr.Examples(
            [
                [str(DEMO_DIR / "reference.png"), str(DEMO_DIR / "pose.mp4"), demo_prompt, None],
                [str(DEMO_DIR / "reference.png"), str(DEMO_DIR / "pose_long.mp4"), demo_prompt, demo_rows],
            ],
            inputs=[reference, pose, prompt, prompts],
            label="Examples (dynamictrl/assets/demo/)",
        )
        inputs = [reference, pose, mask, mask_the_person, prompt, prompts, steps, guidance, seed, clip_frames]
        inputs += [overlap, color_match, retarget, pose_style, max_frames]
        button.click(
            generate,
            inputs,
            [video, sheet, pose_used, command],
            api_name="generate",
            concurrency_id="model",
            preprocess=False,  # raw uploads: a file that is not an image is refused by our check, with our message
        )
    page.queue(default_concurrency_limit=1)  # one generation at a time on the one model
    page.animator = animator
    return page


def _path(value) -> str | None:
    """A file input as a path (gradio passes a path, a dict or a FileData-like object)."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return str(getattr(value, "path", None) or getattr(value, "name", None) or value)


def launch(page, app: argparse.Namespace, **kwargs):
    """Serve the page locally; nothing is fetched from the internet (system fonts, no share link)."""
    import gradio as gr

    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    return page.launch(
        server_name=app.host,
        server_port=app.port,
        share=False,
        ssr_mode=False,
        theme=theme,
        max_file_size=f"{app.max_upload_mb}mb",
        allowed_paths=[str(DEMO_DIR)],
        footer_links=["api"],
        **kwargs,
    )


@run_cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    existing_dir("--pose-models", args.pose_models, "a folder with the DWPose ONNX files")
    existing_dir("--sam-dir", args.sam_dir, "a local SAM folder, e.g. a copy of facebook/sam-vit-base")
    if args.model is not None:
        from dynamictrl.cli.animation import model_geometry

        model_geometry(args.model, args.transformer)  # as infer.py checks it: one line, before anything loads
    page = build_app(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` too removes the results folder (finally below)
    try:
        launch(page, args)
    except OSError as err:  # the port is taken, or the address is not this machine's
        raise UserError(f"--host {args.host} --port {args.port}: {err}", "a free port on this machine") from err
    finally:
        page.animator.close()
    return 0
