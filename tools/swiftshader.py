"""A software Vulkan device on which LiteRT's GPU accelerator (ML Drift on WebGPU/Dawn) runs.

    python -m tools.swiftshader          # prints the ICD json path (fetches it the first time)
    python -m tools.swiftshader --env    # prints VK_ICD_FILENAMES=... and LD_LIBRARY_PATH=...

Exit 2 where the device cannot be had; under CI=true, exit 1 with one line saying so.

SwiftShader comes from Debian's `chromium-common` package and the Vulkan loader from
`libvulkan1`, fetched with `apt-get download` and unpacked with `dpkg -x` into a cache folder
(~/.cache/rarl-tf/swiftshader, or $RARL_SWIFTSHADER_DIR): nothing is installed system-wide,
and a second call finds the cache and returns at once. The loader is fetched only where
`ldconfig` lists none. Dawn then selects "SwiftShader Device" when a process starts with
`VK_ICD_FILENAMES` (and, for the fetched loader, `LD_LIBRARY_PATH`) from `gpu_env`: both are
read when LiteRT loads, so a process that already imported it cannot switch device.

Mesa's lavapipe does not serve: Dawn refuses it (design.md, "Running the GPU path for real").
SwiftShader times are not GPU speeds.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

ICD = os.path.join("usr", "lib", "chromium", "vk_swiftshader_icd.json")
LOADER_DIR = os.path.join("usr", "lib", "x86_64-linux-gnu")
PACKAGES = {
    "chromium-common": ("usr/lib/chromium/libvk_swiftshader.so", ICD),
    "libvulkan1": (os.path.join(LOADER_DIR, "libvulkan.so.1"),),
}


class Unavailable(RuntimeError):
    """The device cannot be had here (no apt-get, no network, not Debian); one line why."""


def cache_dir() -> str:
    return os.environ.get("RARL_SWIFTSHADER_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "rarl-tf", "swiftshader"
    )


def system_has_vulkan_loader() -> bool:
    try:
        listing = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return False
    return "libvulkan.so.1 " in listing


def _fetch(package: str, keep, folder: str) -> None:
    """apt-get download + dpkg -x of `package`; copies the `keep` files into `folder`."""
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise Unavailable(
                f"{tool} not found: the SwiftShader device is fetched from "
                f"Debian's {package} package"
            )
    with tempfile.TemporaryDirectory() as staging:
        done = subprocess.run(
            ["apt-get", "download", package],
            cwd=staging,
            capture_output=True,
            text=True,
            check=False,
        )
        debs = glob.glob(os.path.join(staging, f"{package}_*.deb"))
        if done.returncode != 0 or not debs:
            last = (done.stderr.strip().splitlines() or ["no .deb written"])[-1]
            raise Unavailable(f"apt-get download {package} failed: {last}")
        tree = os.path.join(staging, "tree")
        subprocess.run(["dpkg", "-x", debs[0], tree], check=True, capture_output=True)
        for relative in keep:
            os.makedirs(os.path.dirname(os.path.join(folder, relative)), exist_ok=True)
            shutil.copy2(os.path.join(tree, relative), os.path.join(folder, relative))


def fetch(folder: str | None = None) -> str:
    """The SwiftShader ICD json path, fetched into `folder` (the cache) if not there yet.

    Raises:
      Unavailable: where the packages cannot be fetched.
    """
    folder = folder or cache_dir()
    for package, keep in PACKAGES.items():
        if package == "libvulkan1" and system_has_vulkan_loader():
            continue
        if all(os.path.exists(os.path.join(folder, k)) for k in keep):
            continue
        # Into a sibling first, then renamed file by file: an interrupted fetch leaves no
        # half-copied library under the cache's names.
        partial = folder + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        _fetch(package, keep, partial)
        for relative in keep:
            os.makedirs(os.path.dirname(os.path.join(folder, relative)), exist_ok=True)
            os.replace(os.path.join(partial, relative), os.path.join(folder, relative))
        shutil.rmtree(partial, ignore_errors=True)
    return os.path.join(folder, ICD)


def gpu_env(base: dict | None = None, folder: str | None = None) -> dict:
    """`base` (os.environ) plus what a new process needs to see the SwiftShader device."""
    folder = folder or cache_dir()
    env = dict(os.environ if base is None else base)
    env["VK_ICD_FILENAMES"] = fetch(folder)
    if not system_has_vulkan_loader():
        loader = os.path.join(folder, LOADER_DIR)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (loader, env.get("LD_LIBRARY_PATH", "")) if p
        )
    return env


def main(argv) -> int:
    try:
        if "--env" in argv[1:]:
            env = gpu_env({})
            for name in ("VK_ICD_FILENAMES", "LD_LIBRARY_PATH"):
                if name in env:
                    print(f"{name}={env[name]}")
        else:
            print(fetch())
    except Unavailable as err:
        if os.environ.get("CI") == "true":
            # CI must run the GPU-runtime tests: a device it cannot have fails the run here,
            # in one line, instead of letting those tests skip.
            print(
                f"error: CI=true needs the SwiftShader device and it cannot be had: {err}",
                file=sys.stderr,
            )
            return 1
        print(f"error: no SwiftShader device: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
