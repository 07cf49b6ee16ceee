#!/usr/bin/env python3
"""Writes a SOP with N sequential `true` bash steps: gen_sop.py HOME NAME N [--approval]."""
import os
import sys


def write_sop(home, name, steps, approval=False, mode="automatic", max_concurrent=1):
    d = os.path.join(home, "sops", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "SOP.toml"), "w") as f:
        f.write(
            f'[sop]\nname = "{name}"\ndescription = "bench: {steps} steps"\n'
            f'version = "1.0.0"\npriority = "medium"\nexecution_mode = "{mode}"\n'
            f"cooldown_secs = 0\nmax_concurrent = {max_concurrent}\n"
        )
    lines = [f"# {name}\n", "## Steps\n"]
    for i in range(1, steps + 1):
        ann = " [requires_approval: true]" if approval and i == 2 else ""
        lines.append(f"{i}. **Step {i}**{ann}\n   ```bash\n   true\n   ```\n")
    with open(os.path.join(d, "SOP.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    write_sop(sys.argv[1], sys.argv[2], int(sys.argv[3]), "--approval" in sys.argv)
