"""Export: the artifact loads with plain PyTorch in a process that cannot import genas."""
import json
import subprocess
import sys
import textwrap

import torch

from genas.export import export_network
from genas.spaces import get_space


def test_exported_network_loads_without_genas(tmp_path):
    space = get_space("nb201")
    g = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    torch.manual_seed(0)
    net = space.build_network(g, channels=4, cells_per_stage=1, in_channels=1).eval()
    for m in net.modules():  # non-trivial BN statistics, so eval-mode BN is really exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    export_network(net, {"genotype": space.format(g)}, (1, 16, 16), tmp_path / "exp")
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(net(x), tmp_path / "ref.pt")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["genas"] = None  # any import of genas now fails
        import torch
        try:
            import genas
            raise SystemExit("genas importable")
        except ImportError:
            pass
        m = torch.export.load({str(tmp_path / 'exp' / 'model.pt2')!r}).module()
        x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)
        ref = torch.load({str(tmp_path / 'ref.pt')!r}, weights_only=True)
        out = m(x)
        assert torch.equal(out, ref), (out - ref).abs().max()
        assert m(x[:1]).shape == (1, 10)  # dynamic batch
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
    meta = json.loads((tmp_path / "exp" / "genotype.json").read_text())
    assert meta["genotype"] == space.format(g) and meta["input_shape"] == [1, 16, 16]
