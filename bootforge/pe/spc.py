"""Authenticode's ASN.1 structures ("Windows Authenticode Portable Executable Signature
Format": SpcIndirectDataContent, SpcPeImageData, SpcLink, SpcString), declared for
asn1crypto; the PKCS#7 SignedData around them is asn1crypto's own (cms.ContentInfo,
which takes the PKCS#7 v1 form where the content is the structure itself, not an OCTET
STRING as in CMS).

asn1crypto rather than `cryptography`'s PKCS7SignatureBuilder: the builder signs only
id-data content with its own attributes (S/MIME capabilities, signing time), so
SpcIndirectDataContent would have had to be written as hand-made DER; with asn1crypto the
whole signature is declared and no DER is written by hand. `cryptography` does the RSA
and X.509 work."""

from asn1crypto import algos, cms, core

SPC_INDIRECT_DATA_OBJID = "1.3.6.1.4.1.311.2.1.4"
SPC_PE_IMAGE_DATAOBJ = "1.3.6.1.4.1.311.2.1.15"
# The file link every signer writes (signtool, sbsign: "<<<Obsolete>>>" as a BMPString).
OBSOLETE = "<<<Obsolete>>>"


class SpcString(core.Choice):
    _alternatives = [
        ("unicode", core.BMPString, {"implicit": 0}),
        ("ascii", core.IA5String, {"implicit": 1}),
    ]


class SpcSerializedObject(core.Sequence):
    _fields = [
        ("class_id", core.OctetString),
        ("serialized_data", core.OctetString),
    ]


class SpcLink(core.Choice):
    _alternatives = [
        ("url", core.IA5String, {"implicit": 0}),
        ("moniker", SpcSerializedObject, {"implicit": 1}),
        ("file", SpcString, {"explicit": 2}),
    ]


class SpcPeImageData(core.Sequence):
    _fields = [
        ("flags", core.BitString),
        ("file", SpcLink, {"explicit": 0, "optional": True}),
    ]


class SpcAttributeTypeAndOptionalValue(core.Sequence):
    _fields = [
        ("type", core.ObjectIdentifier),
        ("value", core.Any, {"optional": True}),
    ]


class SpcIndirectDataContent(core.Sequence):
    _fields = [
        ("data", SpcAttributeTypeAndOptionalValue),
        ("message_digest", algos.DigestInfo),
    ]


def indirect_data(digest, algorithm="sha256"):
    """The SpcIndirectDataContent of a PE image whose Authenticode hash is *digest*."""
    pe_data = SpcPeImageData({"flags": (), "file": SpcLink(name="file", value=SpcString(name="unicode",
                                                                                         value=OBSOLETE))})
    return SpcIndirectDataContent({
        "data": {"type": SPC_PE_IMAGE_DATAOBJ, "value": pe_data},
        "message_digest": {"digest_algorithm": {"algorithm": algorithm, "parameters": core.Null()},
                           "digest": digest},
    })


class SpcContentInfo(cms.ContentInfo):
    """PKCS#7 ContentInfo whose [0] EXPLICIT content is the SpcIndirectDataContent itself (the
    PKCS#7 v1 SignedData form Authenticode uses)."""

    _fields = [
        ("content_type", cms.ContentType),
        ("content", SpcIndirectDataContent, {"explicit": 0}),
    ]
    _oid_specs = {}
