from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse

import pytest

from scanner.detectors.known import KnownSecretsDetector, KnownValue, SecretSpec, load_known_values, split_values
from scanner.errors import ExitCode, SecretSpecError

SECRET = b"s3cr3t-Value/with+odd=chars&more"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id=npm,src=/tmp/npmrc", SecretSpec("npm", src="/tmp/npmrc")),
        ("id=npm,source=/tmp/npmrc", SecretSpec("npm", src="/tmp/npmrc")),
        ("src=/tmp/npmrc", SecretSpec("npmrc", src="/tmp/npmrc")),
        ("id=token,env=GH_TOKEN", SecretSpec("token", env="GH_TOKEN")),
        ("id=GH_TOKEN", SecretSpec("GH_TOKEN", env="GH_TOKEN")),
        ("type=env,id=tok,src=GH_TOKEN", SecretSpec("tok", env="GH_TOKEN")),
        ("type=file,id=k,src=/x", SecretSpec("k", src="/x")),
        ("id=a,env=B,required=true", SecretSpec("a", env="B")),
    ],
)
def test_secret_spec_parses_docker_build_syntax(text: str, expected: SecretSpec) -> None:
    assert SecretSpec.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", "id=", "id=a,src=/x,env=Y", "id=a,bogus=1", "id=a,type=ssh", "type=file,id=a", "id"]
)
def test_secret_spec_rejects_bad_flags(text: str) -> None:
    with pytest.raises(SecretSpecError) as err:
        SecretSpec.parse(text)
    assert err.value.exit_code == ExitCode.USAGE


def test_missing_env_and_file_are_usage_errors_without_values(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SecretSpecError, match="GH_TOKEN is not set"):
        load_known_values([SecretSpec.parse("id=GH_TOKEN")], environ={})
    with pytest.raises(SecretSpecError, match="cannot read"):
        load_known_values([SecretSpec.parse(f"id=x,src={tmp_path / 'nope'}")])
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(SecretSpecError, match="no value of at least 8"):
        load_known_values([SecretSpec.parse(f"id=s,src={short}")])


def test_aws_credentials_file_yields_key_id_and_secret_not_the_short_values() -> None:
    raw = (
        b"[default]\naws_access_key_id = AKIAABCDEFGHIJKLMNOP\n"
        b"aws_secret_access_key = abcdEFGH1234/abcdEFGH1234+abcdEFGH123456\nregion=eu\n"
    )
    values = {kv.value: kv.part for kv in split_values("aws", raw)}
    assert values[b"AKIAABCDEFGHIJKLMNOP"] == "value of aws_access_key_id"
    assert values[b"abcdEFGH1234/abcdEFGH1234+abcdEFGH123456"] == "value of aws_secret_access_key"
    assert b"eu" not in values and b"[default]" not in values
    assert b"aws_access_key_id = AKIAABCDEFGHIJKLMNOP" not in values  # the line is not the secret


def test_json_and_npmrc_and_env_files_split_by_value() -> None:
    doc = {"auths": {"r.example": {"auth": base64.b64encode(b"robot:pa55word-xyz").decode()}}, "n": 1}
    values = {kv.value for kv in split_values("cfg", json.dumps(doc).encode())}
    assert b"pa55word-xyz" in values  # the password inside a docker config auth
    npmrc = {kv.value for kv in split_values("n", b"//registry.npmjs.org/:_authToken=npm_abcdefgh12345\n")}
    assert b"npm_abcdefgh12345" in npmrc
    env = {kv.value for kv in split_values("e", b'export API_KEY="quoted-value-123"\nplain line value here\n')}
    assert {b"quoted-value-123", b"plain line value here"} <= env


def test_min_length_is_an_option() -> None:
    assert {kv.value for kv in split_values("s", b"abcdef", min_length=4)} == {b"abcdef"}
    assert split_values("s", b"abcdef", min_length=8) == []


def _find(data: bytes, value: bytes = SECRET) -> list[tuple[str, int, int]]:
    det = KnownSecretsDetector([KnownValue("tok", "whole", value)])
    return [(m.encoding or "", m.start, m.end) for m in det.find(data)]


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"user:", b"robot-account:"])
@pytest.mark.parametrize("encoder", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_found_at_every_byte_alignment_inside_a_longer_blob(prefix: bytes, encoder) -> None:  # type: ignore[no-untyped-def]
    blob = encoder(prefix + SECRET + b"|trailing")
    found = _find(b'{"auth":"' + blob + b'"}')
    assert any(enc.startswith("base64") for enc, _, _ in found), found


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (SECRET, "raw"),
        (binascii.hexlify(SECRET), "hex"),
        (binascii.hexlify(SECRET).upper(), "hex-upper"),
        (urllib.parse.quote(SECRET, safe="").encode(), "url"),
        (
            re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(SECRET, safe="")).encode(),
            "url-lower",
        ),
        (urllib.parse.quote_plus(SECRET + b" x", safe="").encode(), "url-plus"),
        (json.dumps((SECRET + b'"q').decode())[1:-1].encode(), "json"),
        (b"'" + (SECRET + b"'s").replace(b"'", b"'\\''") + b"'", "shell-single"),
    ],
)
def test_each_encoding_is_found_and_named(encoded: bytes, encoding: str) -> None:
    value = (
        SECRET + b" x"
        if encoding == "url-plus"
        else SECRET + b'"q'
        if encoding == "json"
        else (SECRET + b"'s" if encoding == "shell-single" else SECRET)
    )
    found = _find(b"prefix " + encoded + b" suffix", value)
    assert encoding in {enc for enc, _, _ in found}, found


def test_wrapped_base64_as_written_by_base64_1() -> None:
    value = b"//registry.npmjs.org/:_authToken=npm_" + b"A" * 36 + b"\n"
    wrapped = base64.encodebytes(value)  # 76-column lines
    assert b"\n" in wrapped.rstrip(b"\n")
    found = _find(wrapped, value.strip())
    assert any(enc == "base64-wrapped" for enc, _, _ in found), found


def test_lines_inside_a_whole_match_are_reported_once() -> None:
    raw = b"first-line-secret\nsecond-line-secret\n"
    det = KnownSecretsDetector(split_values("f", raw))
    matches = list(det.find(b"copy: " + raw))
    assert [m.description for m in matches] == ["build secret 'f' (whole)"]


def test_no_match_no_false_positive() -> None:
    assert _find(b"nothing to see here, not even s3cr3t-Value") == []


def test_match_repr_hides_the_value() -> None:
    (match,) = KnownSecretsDetector([KnownValue("t", "whole", SECRET)]).find(SECRET)
    assert SECRET.decode() not in repr(match)
    assert SECRET.decode() not in repr(KnownValue("t", "whole", SECRET))


@pytest.mark.parametrize("lead", range(0, 80, 5))
@pytest.mark.parametrize("value", [b"short-secret-22-chars!", b"a-longer-secret-value-of-forty-bytes-xyz", SECRET])
def test_wrapped_base64_found_wherever_the_line_break_falls(lead: int, value: bytes) -> None:
    blob = base64.encodebytes(b"L" * lead + value + b"T" * 10)
    found = _find(b"data:\n" + blob, value)
    assert any(enc.startswith("base64") for enc, _, _ in found), (lead, found)


def test_wrapped_base64_of_two_secrets_sharing_a_prefix() -> None:
    one = b"//registry.npmjs.org/:_authToken=npm_" + b"1" * 36
    two = b"//registry.npmjs.org/:_authToken=npm_" + b"2" * 36
    det = KnownSecretsDetector([KnownValue("one", "whole", one), KnownValue("two", "whole", two)])
    found = {m.secret_id for m in det.find(b"x\n" + base64.encodebytes(b"pad" + two + b"tail"))}
    assert found == {"two"}
