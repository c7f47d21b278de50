"""`bootforge sign` of the input as a PE (pe/sign.py in-process with Debian's snakeoil key): the
image checks, the unsigned length, the certificate table written or appended to, the
CheckSum, the Authenticode digest and the PKCS#7 SignedData. What it writes must read back: the
signed image is read again (pe/image.py, pe/authenticode.py, pe/signature.py) and its last
signature must be valid for its digest (a mismatch is a bug, not bad input). An odd last input
byte signs the signed image once more (sbsign-style appending).

Seeds: systemd's stubs and systemd-boot, iPXE's ipxe.efi, memtest86+'s EFI images (as in the pe
harness), and a UKI bootforge builds from the first 256 KiB of Debian's bzImage, unsigned and
signed (the pcrs harness's seeds, made here when absent)."""

from pathlib import Path

from common import WORK, files, instrumented, main
from seeds_kernels import SNAKEOIL_CERT, SNAKEOIL_KEY, small_ukis

with instrumented(exclude=["bootforge.compress"]):
    from bootforge.pe.authenticode import hash_layout
    from bootforge.pe.image import read_pe
    from bootforge.pe.sign import load_signer, sign_image
    from bootforge.pe.signature import read_signatures

FAMILY = "sign"


def _signer():
    passphrase = Path("/dev/shm") / "bootforge-fuzz-sign.pass"
    passphrase.write_text("snakeoil\n")     # Debian's snakeoil key's passphrase (ovmf's README.Debian)
    try:
        return load_signer(SNAKEOIL_KEY, SNAKEOIL_CERT, str(passphrase))
    finally:
        passphrase.unlink()


KEY, CERT = _signer()


def seeds():
    return small_ukis(WORK / "pcrs-seeds") + files("/usr/lib/systemd/boot/efi/*.efi*", "/boot/memtest86+*.efi", "/boot/ipxe.efi",
                           max_size=1 << 20)


def target(data):
    signed, _ = sign_image(data, KEY, CERT, "fuzz.efi")
    if data and data[-1] & 1:
        signed, _ = sign_image(signed, KEY, CERT, "fuzz.efi.signed")
    img = read_pe(signed)
    last = read_signatures(signed, hash_layout(signed, img))[-1]
    if not (last.digest_matches and last.signature_valid):
        raise AssertionError(f"the signature bootforge wrote does not verify: {last.to_json()}")


if __name__ == "__main__":
    main(FAMILY, seeds, target)
