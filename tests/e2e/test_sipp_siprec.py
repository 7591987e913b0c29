"""sipp as the SIPREC recording client, over UDP and TCP, against a running recorder.

An independent SIP stack (sipp, scenario ``sipp/siprec_uac.xml``) sends a
SIPREC INVITE (``Require: siprec``, ``+sip.src``, multipart SDP + RFC 7865
metadata with ONE mixed sendonly m-line), streams a 1000 Hz PCMU tone with
``rtp_stream`` and one RFC 4733 digit from a pcap with ``play_pcap_audio``
into that same stream, and hangs up with BYE. The recording must hold the
tone on both channels (a mixed stream is put on both) for the whole call,
the digit in its ``dtmf`` list, and the parties from the metadata.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from callvault.media.analysis import tone_spans
from callvault.media.codecs import encode_pcmu
from callvault.media.tones import sine
from tests.e2e.harness import running_recorder
from tests.peers import program, require

SCENARIO = Path(__file__).resolve().parent / "sipp" / "siprec_uac.xml"
DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")  # RFC 4733 digit "1", pt 101
TONE_HZ = 1000.0
CALL_S = 4.0  # the scenario's pauses: 1.5 s + 2.5 s between ACK and BYE

pytestmark = pytest.mark.peer


def _require_sipp() -> str:
    require(DTMF_PCAP, f"{DTMF_PCAP} (Debian package sip-tester)")
    return program("sipp", "Debian package sip-tester")


def _free_port(kinds: tuple[int, ...] = (socket.SOCK_DGRAM, socket.SOCK_STREAM)) -> int:
    """A loopback port free for every socket kind in ``kinds`` (and its +2 for RTP)."""
    for _ in range(200):
        port = random.randrange(21000, 60000, 2)
        sockets: list[socket.socket] = []
        try:
            for candidate in (port, port + 2):
                for kind in kinds:
                    sock = socket.socket(socket.AF_INET, kind)
                    sockets.append(sock)
                    sock.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free loopback port")


def _tone_file(path: Path, seconds: float = 4.0) -> None:
    """Raw PCMU (G.711 µ-law, 8 kHz, no header): what sipp's rtp_stream plays."""
    sox = shutil.which("sox")
    if sox is not None:
        args = ["-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", str(path)]
        args += ["synth", f"{seconds}", "sine", f"{TONE_HZ:g}", "vol", "0.5"]
        subprocess.run(
            [sox, *args],
            check=True,
            capture_output=True,
        )
        return
    path.write_bytes(encode_pcmu(sine(TONE_HZ, seconds, amplitude_dbm0=-6.0)))  # no sox


def _covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)


async def _run_sipp(
    workdir: Path, server: tuple[str, int], transport: str, scenario: Path = SCENARIO
) -> str:
    sipp = _require_sipp()
    cmd = [
        sipp, f"{server[0]}:{server[1]}",
        "-sf", str(scenario),
        "-t", transport,
        "-i", "127.0.0.1",
        "-p", str(_free_port()),
        "-mi", "127.0.0.1",
        "-mp", str(_free_port((socket.SOCK_DGRAM,))),
        "-m", "1",
        "-timeout", "30s", "-timeout_error",
        "-nostdin",
        "-trace_err", "-trace_msg",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    logs = "".join(
        f"\n--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
        for log in sorted(workdir.glob("*.log"))
    )
    report = (
        f"sipp {' '.join(cmd[1:])}\nexit {proc.returncode}\n--- stderr\n"
        f"{err.decode(errors='replace')[-3000:]}\n--- stdout\n"
        f"{out.decode(errors='replace')[-3000:]}{logs}"
    )
    assert proc.returncode == 0, report
    return report


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
async def test_sipp_siprec_call_is_recorded(tmp_path: Path, transport: str) -> None:
    _require_sipp()
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    _tone_file(workdir / "tone.ulaw")
    shutil.copy(DTMF_PCAP, workdir / "dtmf.pcap")
    async with running_recorder(tmp_path) as rec:
        report = await _run_sipp(workdir, rec.sip, transport)
        [(_call, recording_id)] = await rec.wait_finished(timeout=60)
        assert recording_id is not None, report
        meta = await rec.recording(recording_id)
        pcm, rate, _raw = await rec.audio(recording_id)

    # the metadata: alice is the recorded user, the PSTN party the other side
    assert meta["user_id"] == rec.users["alice"]
    sides = {p["aor"]: p["side"] for p in meta["parties"]}
    assert sides == {"sip:alice@acme.example": "user", "sip:+31612345678@pstn.example": "other"}
    assert meta["codecs"] == ["PCMU"]
    assert len(meta["segments"]) == 1

    # one mixed stream: the recorder puts it on both channels, the tone throughout
    assert meta["channels"] == 2 and pcm.shape[0] == 2
    duration = pcm.shape[1] / rate
    assert CALL_S - 0.5 < duration < CALL_S + 2.5, (duration, report)
    for channel in pcm:
        covered = _covered(tone_spans(channel, rate, TONE_HZ), 0.2, duration - 0.2)
        assert covered > duration - 0.9, (covered, duration)

    # the RFC 4733 digit sent from the pcap, 1.5 s after the ACK, on stream 0
    assert [(d["digit"], d["stream_index"], d["source"]) for d in meta["dtmf"]] == [
        ("1", 0, "rfc4733")
    ], meta["dtmf"]
    [digit] = meta["dtmf"]
    assert 1000 <= digit["at_ms"] <= 3500, digit
    assert 100 <= digit["duration_ms"] <= 400, digit  # the pcap's event lasts 280 ms


STAR_PCAP = Path("/usr/share/sip-tester/dtmf_2833_star.pcap")


async def test_sipp_short_code_from_debian_pcaps_starts_recording(tmp_path: Path) -> None:
    """On demand, started by user: sipp sends *1 from Debian's RFC 4733 pcaps."""
    _require_sipp()
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    _tone_file(workdir / "tone.ulaw")
    shutil.copy(STAR_PCAP, workdir / "star.pcap")
    shutil.copy(DTMF_PCAP, workdir / "dtmf.pcap")
    # the same scenario, the single digit replaced by "*" then "1" 400 ms later
    scenario = SCENARIO.read_text().replace(
        '<exec play_pcap_audio="dtmf.pcap"/>',
        '<exec play_pcap_audio="star.pcap"/>\n    </action>\n  </nop>\n'
        '  <pause milliseconds="400"/>\n  <nop>\n    <action>\n'
        '      <exec play_pcap_audio="dtmf.pcap"/>',
    )
    assert scenario.count("play_pcap_audio") == 2
    code_scenario = workdir / "siprec_code.xml"
    code_scenario.write_text(scenario)
    async with running_recorder(tmp_path, mode="on_demand_user") as rec:
        report = await _run_sipp(workdir, rec.sip, "u1", code_scenario)
        [(_call, recording_id)] = await rec.wait_finished(timeout=60)
        assert recording_id is not None, report
        meta = await rec.recording(recording_id)
        pcm, rate, _raw = await rec.audio(recording_id)
    assert [d["digit"] for d in meta["dtmf"]] == ["*", "1"], meta["dtmf"]
    code_at = meta["dtmf"][1]["at_ms"]
    [segment] = meta["segments"]
    # recording starts when the code's digit is pressed and runs to the hang-up
    assert abs(segment["call_start_ms"] - code_at) < 150, (segment, meta["dtmf"])
    duration = pcm.shape[1] / rate
    assert abs(duration - (segment["call_end_ms"] - segment["call_start_ms"]) / 1000) < 0.2
    assert _covered(tone_spans(pcm[0], rate, TONE_HZ), 0, duration) > duration - 0.9
    assert meta["mode"] == "on_demand_user"
