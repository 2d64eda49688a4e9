"""Private keys, tokens with a standard shape, and credentials in URLs and config files."""

from __future__ import annotations

from .model import C, H, I, M, R, Rule, docker_auth, not_placeholder

_BODY = r"(?:[\s\S]{0,16384}?-----END KIND-----)?"


def _pem(rule_id: str, what: str, kind: str, keywords: tuple[str, ...], sample_kind: str = "") -> Rule:
    label = sample_kind or kind.replace("\\", "")
    public = label.replace("PRIVATE", "PUBLIC")
    return R(
        rule_id,
        what,
        f"-----BEGIN {kind}-----" + _BODY.replace("KIND", kind),
        keywords,
        C,
        f"-----BEGIN {label}-----\n{{b64}}\n{{b40}}==\n-----END {label}-----",
        f"-----BEGIN {public}-----\n{{b64}}\n-----END {public}-----",
        max_len=17000,
    )


KEYS: tuple[Rule, ...] = (
    _pem("private-key-rsa", "RSA private key", "RSA PRIVATE KEY", ("rsa private key",)),
    _pem("private-key-ec", "EC private key", "EC PRIVATE KEY", ("ec private key",)),
    _pem("private-key-dsa", "DSA private key", "DSA PRIVATE KEY", ("dsa private key",)),
    _pem("private-key-openssh", "OpenSSH private key", "OPENSSH PRIVATE KEY", ("openssh private key",)),
    _pem("private-key-pkcs8", "PKCS#8 private key", "PRIVATE KEY", ("begin private key",)),
    _pem(
        "private-key-pkcs8-encrypted",
        "encrypted PKCS#8 private key (crackable offline)",
        "ENCRYPTED PRIVATE KEY",
        ("encrypted private key",),
    ),
    _pem("private-key-pgp", "PGP private key block", "PGP PRIVATE KEY BLOCK", ("pgp private key",)),
    _pem(
        "private-key-ssh2", "SSH2 (ssh.com) private key", "SSH2 ENCRYPTED PRIVATE KEY", ("ssh2 encrypted private key",)
    ),
    R(
        "putty-private-key",
        "PuTTY private key",
        r"PuTTY-User-Key-File-\d: [\w\-]+\r?\nEncryption: [\w\-]+",
        ("putty-user-key-file",),
        C,
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k",
        "PuTTY-User-Key-File-3 is a format",
    ),
    R(
        "jwt",
        "JSON web token",
        r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{16,}",
        ("eyj",),
        M,
        "eyJ{u20}.eyJ{u30}.{u30}",
        "eyJhbGciOi.notajwt",
        max_len=8192,
    ),
    R(
        "url-password",
        "password embedded in a URL",
        r"://[^\s:/@\"'<>]{1,128}:([^\s:/@\"'<>]{3,128})@[A-Za-z0-9.\-\[\]]+",
        ("://",),
        H,
        "postgres://app:{a16}@db.internal:5432/app",
        "https://user:${{PASSWORD}}@example.com",
        group=1,
        validate=not_placeholder,
    ),
    R(
        "jdbc-password",
        "password in a JDBC URL",
        r"jdbc:[a-z0-9]+:[^\s\"'<>]*?[?&;]password=([^&;\s\"'<>]{3,})",
        ("jdbc:",),
        H,
        "jdbc:postgresql://db:5432/app?user=app&password={a16}",
        "jdbc:postgresql://db:5432/app?user=app",
        group=1,
        flags=I,
        validate=not_placeholder,
    ),
    R(
        "connection-string-password",
        "password in a database connection string",
        r"(?:Server|Data Source|Host)=[^;\"'\n]{1,100};[^\"'\n]{0,200}?(?:Password|Pwd)=([^;\"'\n]{4,})",
        ("password=", "pwd="),
        H,
        "Server=db;Database=app;User Id=sa;Password={a16};",
        "Server=db;Database=app;Integrated Security=true;",
        group=1,
        flags=I,
        validate=not_placeholder,
    ),
    R(
        "basic-auth-header",
        "HTTP basic authorization header",
        r"authorization\s*:\s*basic\s+([A-Za-z0-9+/]{8,}={0,2})",
        ("basic",),
        H,
        "Authorization: Basic dTp{b21}",
        "Authorization: Basic notbase64!",
        group=1,
        flags=I,
        validate=docker_auth,
    ),
    R(
        "bearer-token-header",
        "HTTP bearer authorization header",
        r"authorization\s*:\s*bearer\s+([A-Za-z0-9._~+/\-]{16,}=*)",
        ("bearer",),
        H,
        "Authorization: Bearer {a32}",
        "Authorization: Bearer short",
        group=1,
        flags=I,
    ),
    R(
        "netrc-password",
        ".netrc password",
        r"\bmachine\s+\S+\s+login\s+\S+\s+password\s+(\S{4,})",
        ("machine",),
        H,
        "machine github.com login bot password {a20}",
        "machine github.com login bot password changeme",
        group=1,
        validate=not_placeholder,
    ),
    R(
        "ini-password",
        "password in an INI / .pypirc / pip.conf file",
        r"(?m)^[ \t]*password[ \t]*[:=][ \t]*([^\s$%{<]\S{5,})[ \t]*$",
        ("password",),
        H,
        "[pypi]\nusername = __token__\npassword = {a20}",
        "[pypi]\npassword = %(PYPI_PASSWORD)s",
        group=1,
        flags=I,
        validate=not_placeholder,
    ),
    R(
        "dotenv-secret",
        "secret in an environment file (.env, KEY=value)",
        r"(?m)^(?:export[ \t]+)?[A-Z0-9_]*"
        r"(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)"
        r"[A-Z0-9_]*[ \t]*=[ \t]*[\"']?([^\s\"'#$(){}\[\]]{8,})[\"']?[ \t]*$",
        ("password", "passwd", "secret", "token", "api_key", "apikey", "access_key", "private_key", "credential"),
        H,
        "DB_PASSWORD={a16}",
        "DB_PASSWORD=${{DB_PASSWORD}}",
        group=1,
        validate=not_placeholder,
    ),
    R(
        "json-secret-field",
        "secret in a JSON document (Terraform state, app config)",
        r"\"(?:password|secret|client_secret|secret_key|access_key|private_key|api_key|apikey|token|auth_token|"
        r"access_token|refresh_token|master_password|admin_password)\"\s*:\s*\"([^\"\s$<{]{8,})\"",
        ("password", "secret", "key", "token"),
        H,
        '{{"resources": [{{"type": "aws_db_instance", "instances": [{{"attributes": {{"password": "{a20}"}}}}]}}]}}',
        '{{"password": ""}}',
        group=1,
        flags=I,
        validate=not_placeholder,
    ),
    R(
        "htpasswd-hash",
        "password hash (htpasswd / shadow): crackable offline",
        r"(?m)^[A-Za-z0-9._\-]{1,32}:(\$(?:2[aby]|apr1|1|5|6|y)\$[./A-Za-z0-9$]{20,})",
        ("$2y$", "$2b$", "$2a$", "$apr1$", "$6$", "$5$", "$1$", "$y$"),
        M,
        "admin:$apr1${a8}${a22}",
        "admin:x:0:0:root:/root:/bin/sh",
        group=1,
    ),
    R(
        "git-credentials",
        "credentials in .git-credentials",
        r"(?m)^https?://[^\s:/@]+:([^\s:/@]{4,})@[\w.\-]+/?$",
        ("http",),
        H,
        "https://bot:{a40}@github.com",
        "https://github.com/org/repo",
        group=1,
        validate=not_placeholder,
    ),
)
