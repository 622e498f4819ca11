"""The Signal gateway's firewall, as the signal_gateway role writes it, in a network namespace.

The gateway has no authentication. Docker before 28.0 (Debian 12: 20.10) publishes
``127.0.0.1:8080`` with a DNAT rule that also takes packets another host on the local segment
addresses to 127.0.0.1, and forwards anything routed to the container's own address; any local
user or container could connect too. Here a fresh namespace plays the host: a veth pair carries
hand-made packets "from the local network", a table shaped like Docker's counts what reaches its
DNAT and its forwarding, and users connect to a listener on the published address. Each check is
made without the role's table first (so the test can fail), then with it.

Needs root, ``nft`` (nftables) and ``unshare``; skipped, saying why, without them.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "ansible" / "roles" / "signal_gateway"
PORT = 18080
CLIENT, STRANGER = "daemon", "nobody"  # stand-ins for moltbot's user and anyone else: every Debian has both

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed (apt-get install nftables)"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed"),
]

# Runs as root inside the new namespace; prints what it saw, as JSON.
INSIDE = r"""
import json, socket, struct, subprocess, sys, time

firewall, bridge = sys.argv[1], sys.argv[3]
port, client, stranger = int(sys.argv[2]), int(sys.argv[4]), int(sys.argv[5])

def sh(*argv, stdin=None):
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {done.stderr}")
    return done.stdout

for command in ("link set lo up", "link add veth0 type veth peer name veth1",
                "addr add 10.200.0.1/24 dev veth0", "link set veth0 up", "link set veth1 up",
                f"link add {bridge} type bridge", f"addr add 10.201.0.1/24 dev {bridge}",
                f"link set {bridge} up"):
    sh("ip", *command.split())
open("/proc/sys/net/ipv4/ip_forward", "w").write("1")
# Docker's shape: the published port DNATed to the container, forwarding into its bridge accepted.
sh("nft", "-f", "-", stdin=f'''
table ip docker_like {{
    counter arrived {{}}
    counter translated {{}}
    counter forwarded {{}}
    chain first {{
        type filter hook prerouting priority raw - 1;
        iifname "veth0" counter name arrived
    }}
    chain nat {{
        type nat hook prerouting priority dstnat;
        ip daddr 127.0.0.1 tcp dport {port} counter name translated dnat to 10.201.0.5
    }}
    chain forwarding {{
        type filter hook forward priority filter;
        oifname "{bridge}" counter name forwarded accept
    }}
}}''')

def count(name):
    found = json.loads(sh("nft", "-j", "list", "counter", "ip", "docker_like", name))
    return next(item["counter"]["packets"] for item in found["nftables"] if "counter" in item)

def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

source_ports = iter(range(40000, 41000))  # a new flow each time: NAT sees only a flow's first packet

def syn(source, destination):
    tcp = struct.pack("!HHIIBBHHH", next(source_ports), port, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                     socket.inet_aton(source), socket.inet_aton(destination))
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + tcp

def mac(device):
    (link,) = json.loads(sh("ip", "-j", "link", "show", device))  # (/sys shows the first namespace)
    return bytes.fromhex(link["address"].replace(":", ""))

def from_the_network(destination):
    # A neighbour's frame: to this host's MAC, whatever the IP destination says.
    arrived = count("arrived")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
        raw.bind(("veth1", 0))
        raw.send(mac("veth0") + mac("veth1") + b"\x08\x00" + syn("10.200.0.2", destination))
    deadline = time.monotonic() + 5
    while count("arrived") == arrived and time.monotonic() < deadline:
        time.sleep(0.01)  # the packet is received asynchronously; its hooks run at once after

def connect_as(uid, address):
    code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1); print('connected')"
    as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    result = subprocess.run([*as_user, "/usr/bin/python3", "-c", code], capture_output=True, text=True)
    if "connected" in result.stdout:
        return "connected"
    return result.stderr.strip().splitlines()[-1].split(":")[0]  # the exception's name

def observe():
    before = count("translated"), count("forwarded")
    from_the_network("127.0.0.1")   # moby#45610: the published loopback port, from the local network
    from_the_network("10.201.0.5")  # the container's own address, routed through this host
    users = {"root": 0, "client": client, "stranger": stranger}
    return {
        "dnat": count("translated") - before[0],
        "forwarded": count("forwarded") - before[1],
        "users": {name: connect_as(uid, "127.0.0.1") for name, uid in users.items()},
        "stranger to the container": connect_as(stranger, "10.201.0.5"),
    }

listener = socket.create_server(("127.0.0.1", port))
without = observe()
sh("nft", "-f", firewall)
sh("nft", "-f", firewall)  # loading it again (every boot, every change) is harmless
print(json.dumps({"without": without, "with": observe()}))
"""


def render_firewall(tmp_path: Path) -> Path:
    """The role's template with its defaults, on the test's port, for the stand-in client."""
    rendered = tmp_path / "firewall.nft"
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [bin_dir / "ansible", "localhost", "-c", "local", "-i", "localhost,",
         "-m", "ansible.builtin.template", "-a", f"src={ROLE}/templates/firewall.nft.j2 dest={rendered}",
         "-e", f"@{ROLE}/defaults/main.yml",
         "-e", json.dumps({"signal_gateway_port": PORT, "signal_gateway_clients": [CLIENT]}),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible" / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return rendered


def test_the_roles_firewall_keeps_the_network_other_containers_and_other_users_off_the_gateway(
    tmp_path: Path,
) -> None:
    firewall = render_firewall(tmp_path)
    bridge = "br-signal-gw"
    assert f'oifname "{bridge}"' in firewall.read_text(), "the role's default bridge name"
    ids = [str(pwd.getpwnam(name).pw_uid) for name in (CLIENT, STRANGER)]
    argv = ["unshare", "--net", sys.executable, "-c", INSIDE, str(firewall), str(PORT), bridge, *ids]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout)
    # The simulation shows the holes: without the table the network reaches Docker's DNAT and the
    # container, and every local user connects.
    everyone = dict.fromkeys(["root", "client", "stranger"], "connected")
    assert seen["without"] == {
        "dnat": 1, "forwarded": 2, "users": everyone, "stranger to the container": "TimeoutError"
    }  # fmt: skip
    # With it: nothing from the network gets in; root (Docker's proxy) and moltbot's user still connect.
    refused = "ConnectionRefusedError"
    assert seen["with"] == {
        "dnat": 0, "forwarded": 0, "users": {**everyone, "stranger": refused},
        "stranger to the container": refused,
    }  # fmt: skip
