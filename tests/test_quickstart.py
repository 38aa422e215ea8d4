"""The quickstart page's code runs as it is, copy-pasted, and the sparse model learns."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_quickstart_runs_as_written(tmp_path):
    pytest.importorskip("sklearn")
    text = (ROOT / "docs" / "quickstart.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    script = tmp_path / "quickstart.py"
    script.write_text(blocks[0])
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    accs = {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+): test accuracy ([\d.]+)%", out.stdout)}
    assert set(accs) == {"snnTorch", "sparsify"}, out.stdout
    assert accs["sparsify"] > 60 and accs["sparsify"] > accs["snnTorch"] - 10, out.stdout
