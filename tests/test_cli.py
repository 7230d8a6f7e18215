"""The command line: convert / show / render, and bad input that exits 2 without leaving files behind."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trackdiffusion.__main__ import main
from trackdiffusion.data.tracklets import load

REPO = Path(__file__).resolve().parents[1]
STREET = REPO / "example_workflows" / "input" / "tracklets" / "street.json"


def test_convert_json_to_mot_and_back_keeps_boxes(tmp_path, capsys):
    gt = tmp_path / "seq" / "gt" / "gt.txt"
    assert main(["tracklets", "convert", str(STREET), str(gt)]) == 0
    back = tmp_path / "back.json"
    assert main(["tracklets", "convert", str(gt), str(back), "--width", "1024", "--height", "576"]) == 0
    src, dst = load(STREET).dense(clamp=False), load(back).dense(clamp=False)
    assert dst.ids == src.ids
    np.testing.assert_array_equal(dst.visible, src.visible)
    np.testing.assert_allclose(dst.boxes[dst.visible], src.boxes[src.visible], atol=1e-6 * 1024)
    assert "wrote" in capsys.readouterr().out


def test_convert_mot_uses_seqinfo_and_resamples_frames(tmp_path):
    seq = tmp_path / "MOT-01"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=MOT-01\nimWidth=640\nimHeight=480\nseqLength=5\n"
                                     "frameRate=25\n")
    (seq / "gt" / "gt.txt").write_text("1,7,10,20,30,40,1,1,1\n5,7,50,20,30,40,1,1,1\n")
    out = tmp_path / "t.json"
    assert main(["tracklets", "convert", str(seq / "gt" / "gt.txt"), str(out), "--frames", "9"]) == 0
    doc = json.loads(out.read_text())
    assert (doc["width"], doc["height"], doc["num_frames"]) == (640, 480, 9)
    t = load(out)
    boxes = t.dense().boxes[:, 0]
    # frame 0 and frame 4 of the source (MOT frames 1 and 5) land on frames 0 and 8 of the 9-frame output
    np.testing.assert_allclose(boxes[0], [10, 20, 40, 60])
    np.testing.assert_allclose(boxes[8], [50, 20, 80, 60])
    assert t.objects[0].label == "pedestrian"


def street_with_dog_entering_from_outside(tmp_path: Path) -> Path:
    """street.json with the dog's first box reaching 76 px past the right edge (x2 1100 of 1024)."""
    doc = json.loads(STREET.read_text())
    doc["objects"][2]["keyframes"][0]["box"] = [980, 420, 1100, 520]
    path = tmp_path / "entering.json"
    path.write_text(json.dumps(doc))
    return path


def test_show_reports_spans_and_out_of_frame(capsys, tmp_path):
    assert main(["tracklets", "show", str(STREET)]) == 0
    out = capsys.readouterr().out
    assert "1024x576, 14 frames" in out and "3 objects" in out
    dog = next(line for line in out.splitlines() if " dog " in line)
    assert "visible 3-11" in dog and "out of frame" not in dog  # the example's dog enters inside the image
    assert main(["tracklets", "show", str(street_with_dog_entering_from_outside(tmp_path))]) == 0
    dog = next(line for line in capsys.readouterr().out.splitlines() if " dog " in line)
    assert "visible 3-11" in dog and "partly out of frame 3-4" in dog


def test_render_writes_annotated_video(tmp_path):
    out = tmp_path / "street.mp4"
    assert main(["tracklets", "render", str(STREET), str(out)]) == 0
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 14 and frames[0].shape == (576, 1024, 3)
    # the car's box edge (red, #e6194b) is drawn at its frame-0 left edge x=60
    _b, g, r = frames[0][400, 60].astype(int)
    assert r > 150 and g < 100


def test_render_png_frames_over_background_image(tmp_path):
    bg = np.zeros((288, 512, 3), np.uint8)
    bg[:] = (0, 0, 255)  # BGR red background, drawn at half the tracklet canvas
    cv2.imwrite(str(tmp_path / "bg.png"), bg)
    out = tmp_path / "frames"
    assert main(["tracklets", "render", str(STREET), str(out), "--image", str(tmp_path / "bg.png")]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 14
    first = cv2.imread(str(pngs[0]))
    assert first.shape == (288, 512, 3)
    assert tuple(first[5, 5]) == (0, 0, 255)


@pytest.mark.parametrize("args, message", [
    (["tracklets", "show", "missing.json"], "file not found"),
    (["tracklets", "convert", "{bad", "x.json"], "file not found"),
])
def test_bad_paths_exit_2(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_bad_input_leaves_no_output_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    doc = json.loads(STREET.read_text())
    doc["objects"][1]["keyframes"][2]["frame"] = 40
    bad.write_text(json.dumps(doc))
    out = tmp_path / "out.mp4"
    assert main(["tracklets", "render", str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert "object 2" in err and "frame 40" in err and "num_frames is 14" in err
    assert list(tmp_path.iterdir()) == [bad]


def test_strict_mode_rejects_off_canvas_boxes(capsys, tmp_path):
    assert main(["tracklets", "show", str(STREET), "--strict"]) == 0  # the example lies inside its canvas
    capsys.readouterr()
    assert main(["tracklets", "show", str(street_with_dog_entering_from_outside(tmp_path)), "--strict"]) == 2
    assert "object 3, frame 3" in capsys.readouterr().err


def test_outputs_never_destroy_inputs_and_are_not_overwritten_without_force(tmp_path, capsys):
    import os

    src = tmp_path / "street.json"
    src.write_text(json.dumps({"version": 1, "width": 64, "height": 64, "num_frames": 3, "objects": [
        {"id": 1, "label": "a", "keyframes": [{"frame": 0, "box": [1, 1, 20, 20]}]}]}))
    original = src.read_bytes()
    link = tmp_path / "link.json"
    os.symlink(src, link)
    for target in (src, link):  # the input itself, directly or through a link: refused even with --force
        assert main(["tracklets", "convert", str(src), str(target), "--force"]) == 2
        assert "destroy the input" in capsys.readouterr().err
    assert src.read_bytes() == original
    out = tmp_path / "out.json"
    out.write_text("keep me")
    assert main(["tracklets", "convert", str(src), str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main(["tracklets", "convert", str(src), str(out), "--force"]) == 0 and out.read_text() != "keep me"
    assert main(["tracklets", "convert", str(src), str(tmp_path)]) == 2  # a folder where a file goes
    assert "is a folder" in capsys.readouterr().err
    video = tmp_path / "v.gif"
    video.write_bytes(b"old")
    assert main(["tracklets", "render", str(src), str(video)]) == 2 and video.read_bytes() == b"old"


def test_bare_command_lists_the_commands_and_a_closed_pipe_is_quiet(capsys, tmp_path):
    import subprocess
    import sys

    assert main([]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("tracklets", "weights", "demo", "run", "train", "synth", "eval"))
    # `trackdiffusion tracklets show ... | head -1`: no BrokenPipeError traceback
    many = tmp_path / "many.json"  # 3000 objects: 3000 lines, far more than the pipe holds
    many.write_text(json.dumps({"version": 1, "width": 64, "height": 64, "num_frames": 2, "objects": [
        {"id": i, "label": "a", "keyframes": [{"frame": 0, "box": [1, 1, 20, 20]}]} for i in range(1, 3001)]}))
    cmd = f"{sys.executable} -m trackdiffusion tracklets show {many} | head -1"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.parametrize("option", [["--steps", "-5"], ["--steps", "0"], ["--frames", "0"], ["--frames", "1"]])
def test_demo_refuses_counts_out_of_range_in_one_line(option, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", str(tmp_path / "x.mp4"), *option])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option[0]}" in err and "outside" in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_show_condenses_clamping_warnings_per_object_on_stderr(tmp_path, capsys):
    keyframes = [{"frame": f, "box": [-10 - f, 1, 20, 20]} for f in range(200)]  # 200 clamped boxes
    src = tmp_path / "t.json"
    src.write_text(json.dumps({"version": 1, "width": 64, "height": 64, "num_frames": 200, "objects": [
        {"id": 7, "label": "a", "keyframes": keyframes},
        {"id": 8, "label": "b", "keyframes": [{"frame": 0, "box": [50, 50, 70, 60]}]}]}))
    assert main(["tracklets", "show", str(src)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in out and "id   7" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("warning: object 7: 200 boxes clamped to the canvas: frame 0: box [-10,")
    assert "(and 197 more)" in lines[0]
    assert lines[1].startswith("warning: object 8: 1 box clamped")


@pytest.mark.parametrize("suffix", [".mp4", ""])
def test_kill_during_render_leaves_no_partial_output(tmp_path, suffix):
    """SIGTERM while a render is writing: exit 130 with one line, the hidden temporary file (or folder) removed, no
    output, as on Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out" / f"long{suffix}"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "trackdiffusion", "tracklets", "render", str(STREET), str(out), "--frames", "1500", "--fps", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".") for p in out.parent.iterdir()):  # the writer has started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the render never started writing"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().count("\n") == 0 and "interrupted" in err
    assert list(out.parent.iterdir()) == []


def test_a_folder_given_as_tracklets_is_named_a_folder(tmp_path, capsys):
    assert main(["tracklets", "show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a folder, not a tracklets file" in err and "not found" not in err
    with pytest.raises(Exception, match="is a folder"):
        load(str(tmp_path))


@pytest.mark.parametrize("size, stretched", [((64, 64), True), ((512, 288), False), ((1024, 576), None)])
def test_render_says_when_the_image_is_not_the_canvas(tmp_path, capsys, size, stretched):
    """street.json's canvas is 1024x576: another image size is said (stretched when its aspect ratio differs)."""
    image = tmp_path / "bg.png"
    cv2.imwrite(str(image), np.full((size[1], size[0], 3), 90, np.uint8))
    assert main(["tracklets", "render", str(STREET), str(tmp_path / "o.gif"), "--image", str(image),
                 "--frames", "2"]) == 0
    err = capsys.readouterr().err
    if stretched is None:
        assert "warning" not in err
    else:
        assert f"the image is {size[0]}x{size[1]}, the tracklets' canvas 1024x576" in err
        assert ("STRETCHED" in err) == stretched


def test_render_to_mp4_at_a_high_frame_rate(tmp_path):
    """Resampling street.json (14 frames, 7 fps) to 400 frames keeps its duration: 215 fps, which MPEG-4 can store
    only as a whole number (OpenCV refused the file before)."""
    out = tmp_path / "fast.mp4"
    assert main(["tracklets", "render", str(STREET), str(out), "--frames", "400"]) == 0
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 400 and round(capture.get(cv2.CAP_PROP_FPS)) == 215
    capture.release()


def test_every_argument_has_help_and_says_its_default():
    """Every positional and option of every command has help text; one with a default worth knowing names it."""
    import argparse

    from trackdiffusion.__main__ import build_parser

    missing, silent = [], []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not isinstance(action, argparse._HelpAction):
                where = " ".join([*path, *(action.option_strings[:1] or [action.dest])])
                if not action.help:
                    missing.append(where)
                elif (action.default not in (None, False, True, [], argparse.SUPPRESS)
                      and "default" not in action.help.lower()):
                    silent.append(f"{where} (default {action.default!r})")

    walk(build_parser(), ["trackdiffusion"])
    assert not missing, f"no help text: {missing}"
    assert not silent, f"help does not say the default: {silent}"


def test_demo_reads_tracklets_as_the_other_commands_do_and_names_its_slot_limit(tmp_path, capsys):
    """--from / --width / --height for a MOT file without a canvas; 5 objects on the 4-slot demo model: a warning
    that says only the first 4 are animated."""
    mot = tmp_path / "five.txt"
    mot.write_text("".join(f"{f},{i},{4 + 10 * i},{4 + f},8,8,1,1,1\n" for i in range(1, 6) for f in (1, 4)))
    out = tmp_path / "demo.gif"
    assert main(["demo", str(out), "--tracklets", str(mot), "--from", "mot", "--width", "64", "--height", "64",
                 "--steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "5 objects and this model has 4 slots: only the first 4" in err and out.is_file()
    assert main(["demo", str(tmp_path / "x.gif"), "--tracklets", str(mot), "--steps", "2"]) == 2
    assert "canvas" in capsys.readouterr().err  # MOT without --width/--height: one line naming the missing canvas
