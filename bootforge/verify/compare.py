"""What a loader handed over (observed) and what `bootforge load` predicted, as the same
named fields, so one comparison serves `bootforge verify` and the test suite's matrix."""

from bootforge.loader.policies.grub_efi import grub_efi_mmap
from bootforge.memmap.model import MemoryMap, MemoryRange
from bootforge.multiboot.dump import Memory, Region, decode_mb1_info, decode_mb2_info


def observed_fields(doc):
    """The compared fields of captured boot information ({"ebx", "multiboot1"|"multiboot2"})."""
    out = {"mbi_address": doc["ebx"]}
    if "multiboot1" in doc:
        m = doc["multiboot1"]
        out.update(mem_lower=m.get("mem_lower"), mem_upper=m.get("mem_upper"), cmdline=m.get("cmdline"),
                   modules=[(x["mod_start"], x["mod_end"]) for x in m.get("modules", [])],
                   module_strings=[x.get("string") for x in m.get("modules", [])],
                   mmap=[(e["base_addr"], e["length"], e["type"]) for e in m.get("mmap", [])])
    else:
        tags = doc["multiboot2"]["tags"]
        mi = next((t for t in tags if t["type"] == 4), {})
        out.update(mem_lower=mi.get("mem_lower"), mem_upper=mi.get("mem_upper"),
                   cmdline=next((t["string"] for t in tags if t["type"] == 1), None),
                   modules=[(t["mod_start"], t["mod_end"]) for t in tags if t["type"] == 3],
                   module_strings=[t["string"] for t in tags if t["type"] == 3],
                   mmap=[(e["base_addr"], e["length"], e["type"]) for t in tags if t["type"] == 6
                         for e in t["entries"]],
                   mbi_size=doc["multiboot2"]["total_size"])
        t17 = next((t for t in tags if t["type"] == 17), None)
        if t17 is not None:
            # Tag 17 as the platform input: GRUB's conversion of it must give tag 6.
            efi = MemoryMap("efi", [MemoryRange(d["physical_start"], d["number_of_pages"] * 4096, d["type"],
                                                d["attribute"]) for d in t17["descriptors"]])
            out["mmap_from_tag17"] = grub_efi_mmap(efi)
    return out


def predicted_fields(res):
    """The same fields from a LoadResult."""
    out = {"mbi_address": res.mbi_address, "mem_lower": res.mem_lower, "mem_upper": res.mem_upper,
           "cmdline": res.cmdline, "modules": [(m["start"], m["end"]) for m in res.modules],
           "module_strings": [m["cmdline"] for m in res.modules], "mmap": list(res.mmap)}
    if res.protocol == "multiboot2" and res.loader != "grub-efi-mb2":
        out["mbi_size"] = len(res.mbi_bytes)
    if res.loader == "grub-efi-mb2":
        out["mmap_from_tag17"] = list(res.mmap)
    return out


def tag_names(doc):
    """MB2: the information tags by name in order; MB1: the names of the flags set."""
    if "multiboot2" in doc:
        return [t["name"] for t in doc["multiboot2"]["tags"]]
    return list(doc["multiboot1"]["flags_set"])


def predicted_tag_names(res):
    """tag_names of the predicted boot information (decoded by the same decoder as the capture)."""
    if res.protocol == "multiboot2":
        return tag_names({"multiboot2": decode_mb2_info(res.mbi_bytes)})
    info, _problems = decode_mb1_info(Memory([Region("mbi", res.mbi_address, res.mbi_bytes, 0)]), res.mbi_address)
    return tag_names({"multiboot1": info})
