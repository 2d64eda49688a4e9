"""Credentials in the places people put them (rules/data/places.toml): command lines, webhooks
without a scheme, Kubernetes Secrets and Helm values, tools' credential files, Redis URLs."""

from __future__ import annotations

import pytest

from scanner.detectors import ContentScanner, build_detectors

from .rule_table import DATA, Case, all_rules, cases, where
from .samples import expand

PLACES = cases([DATA / "places.toml"])
SCANNER = ContentScanner(build_detectors([], rules=all_rules(PLACES)))
STRONG = ("critical", "high")


def _hits(text: str, path: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(h.rule_id, h.severity.value, h.also) for h in SCANNER.scan_bytes(text.encode(), path=path)]


@pytest.mark.parametrize("case", PLACES, ids=lambda c: c.rule.id)
def test_every_example_is_a_finding_of_its_rule(case: Case) -> None:
    for template in case.examples:
        for _ in range(4):
            text = expand(template)
            hits = _hits("x = 1\n" + text + "\n", where(case.rule))
            assert any(case.rule.id == r or case.rule.id in also for r, _, also in hits), (text, hits)
            assert any(s in STRONG for _, s, _ in hits), (text, hits)


@pytest.mark.parametrize("case", PLACES, ids=lambda c: c.rule.id)
def test_no_negative_is_a_finding_of_its_rule(case: Case) -> None:
    for template in case.negatives:
        text = expand(template)
        hits = _hits("x = 1\n" + text + "\n", where(case.rule))
        assert not any(case.rule.id == r or case.rule.id in also for r, _, also in hits), (text, hits)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("curl -u admin:$PASSWORD https://api.internal/x", "app/run.sh"),
        ("mysql -uroot -p${{DB_PASS}} app", "app/run.sh"),
        ("PGPASSWORD=<password> psql -h db", "app/run.sh"),
        ("sshpass -p changeme ssh root@host", "app/run.sh"),
        ("docker login -u ci -p $CI_REGISTRY_PASSWORD $CI_REGISTRY", "app/.gitlab-ci.sh"),
        ("htpasswd -bc /etc/nginx/.htpasswd admin ${{ADMIN_PASSWORD}}", "app/entrypoint.sh"),
        ("wget --password=<password> https://x/y", "app/run.sh"),
        ("kind: Secret\nstringData:\n  password: ${{DB_PASSWORD}}\n", "app/k8s/secret.yaml"),
        ("kind: Secret\ndata:\n  password: Y2hhbmdlbWU=\n", "app/k8s/secret.yaml"),
        ("db:\n  password: changeme\n  existingSecret: db-credentials\n", "app/chart/values.yaml"),
        ('<add key="ClearTextPassword" value="$(NUGET_PASSWORD)" />', "app/NuGet.Config"),
        ("REDIS_URL=redis://:${{REDIS_PASSWORD}}@redis:6379/0", "app/.env"),
        ("REDIS_URL=redis://:<password>@redis:6379/0", "app/.env"),
    ],
)
def test_a_placeholder_is_never_high(text: str, path: str) -> None:
    hits = _hits(expand(text), path)
    assert not [h for h in hits if h[1] in STRONG], hits


def test_connection_strings_already_found() -> None:
    """ODBC, ADO.NET, MongoDB, AMQP and SQLAlchemy URLs: the built-in rules find them."""
    for text in (
        "Driver={{ODBC Driver 17}};Server=db;UID=sa;PWD={a12}{d2};",
        '"Default": "Server=db;Database=app;User Id=sa;Password={a12}{d2};"',
        "MONGO_URL=mongodb+srv://app:{a16}@cluster0.internal.net/db",
        "BROKER=amqp://app:{a16}@rabbit:5672/",
        "DATABASE_URL=postgresql+psycopg2://app:{a16}@db/app",
    ):
        assert any(s in STRONG for _, s, _ in _hits(expand(text), "app/settings.conf")), text


@pytest.mark.parametrize(
    "template",
    [
        "https://hooks.slack.com/services/T{U8}/B{U8}/{a24}",
        "https://discord.com/api/webhooks/{d18}/{u68}",
        "https://contoso.webhook.office.com/webhookb2/{uuid}@{uuid}/IncomingWebhook/{h32}/{uuid}",
        "https://chat.googleapis.com/v1/spaces/AAAA{a7}/messages?key={u39}&token={u43}",
    ],
)
def test_a_webhook_with_its_scheme_is_left_to_the_vendors_rule(template: str) -> None:
    hits = _hits("url: " + expand(template) + "\n", "app/notify.yaml")
    assert not [r for r, _, also in hits if r.endswith("-no-scheme") or any(a.endswith("-no-scheme") for a in also)]
