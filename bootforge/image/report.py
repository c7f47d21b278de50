"""Text views of image builds (the inspect report lives in bootforge/image/inspect.py)."""


def render_build_summary(s):
    out = [f"  sha256 {s['sha256']}"] if "sha256" in s else []       # build --sha256
    out.append(f"  loader {s['loader']} for {', '.join(s['firmware'])}"
               + (f", volume id {s['volume_id']}" if "volume_id" in s else ""))
    for e in s.get("el_torito", []):
        out.append(f"  El Torito {e['platform']}: sector {e['lba']}, {e['size']} bytes")
    if "gpt" in s:
        out.append(f"  GPT disk {s['gpt']['disk_guid']}")
    if "esp" in s:
        out.append(f"  ESP: {s['esp']['type']}, {s['esp']['bytes']} bytes")
    for key in ("grub_modules_bios", "grub_modules_uefi"):
        if key in s:
            out.append(f"  GRUB modules ({key.rsplit('_', 1)[1]}): {' '.join(s[key])}")
    if "grub_early_config" in s:
        out.append("  GRUB early config (in the core image):")
        out += ["    " + line for line in s["grub_early_config"].splitlines()]
    if s["configuration_path"] is not None:        # a UKI as BOOTX64.EFI has no configuration
        out.append(f"  {s['configuration_path']}:")
        out += ["    " + line if line else "" for line in s["configuration"].splitlines()]
    return "\n".join(out) + "\n"
