"""The vendor-context detector: a literal under a vendor's credential name is that vendor's."""

from __future__ import annotations

import re

import pytest

from scanner.detectors import ContentScanner, build_detectors
from scanner.detectors.content import GENERIC_RULES
from scanner.detectors.entropy import EntropyDetector, not_a_value
from scanner.detectors.vendor_context import VendorContextDetector, builtin_vendors, parse_vendors

from .samples import expand

SCANNER = ContentScanner(build_detectors([]))
DETECTOR = VendorContextDetector()

# (template, path, vendor slug): {v} is a fresh random value
POSITIVES = [
    ("SENDBIRD_API_TOKEN={a32}", ".env", "sendbird"),
    ("MIXPANEL_SECRET={h32}", ".env", "mixpanel"),
    ("export AMPLITUDE_API_KEY={h32}", "entrypoint.sh", "amplitude"),
    ("KLAVIYO_PRIVATE_KEY={a30}", "app.env", "klaviyo"),
    ("ONESIGNAL_REST_API_KEY={a48}", ".env", "onesignal"),
    ("pusher_secret = {h20}", "config.ini", "pusher"),
    ("PUBNUB_SECRET_KEY={a40}", ".env", "pubnub"),
    ("PLIVO_AUTH_TOKEN={a40}", ".env", "plivo"),
    ("TELNYX_API_KEY={a40}", ".env", "telnyx"),
    ("vonage.apiSecret: {a16}", "application.yml", "vonage"),
    ("nexmo_api_secret: {a16}", "config.yml", "nexmo"),
    ("mixpanel.apiSecret: {h32}", "application.yml", "mixpanel"),
    ("posthogApiKey: '{a40}'", "config.yml", "posthog"),
    ('const amplitudeApiKey = "{h32}";', "src/app.js", "amplitude"),
    ('hubspotAccessToken = "{a40}"', "settings.py", "hubspot"),
    ('"pipedriveApiToken": "{h40}"', "config.json", "pipedrive"),
    ('{{"mixpanel": {{"secret": "{h32}"}}}}', "config.json", "mixpanel"),
    ("mixpanel:\n  api_secret: {h32}", "values.yaml", "mixpanel"),
    ("[razorpay]\nkey_secret = {a24}", "settings.ini", "razorpay"),
    ("RAZORPAY_KEY_SECRET={a24}", ".env", "razorpay"),
    ("PAYSTACK_SECRET_KEY={a40}", ".env", "paystack"),
    ("BINANCE_API_SECRET={a64}", ".env", "binance"),
    ("ETHERSCAN_API_KEY={U34}", ".env", "etherscan"),
    ("INFURA_API_SECRET={h32}", ".env", "infura"),
    ("ALCHEMY_API_KEY={a32}", ".env", "alchemy"),
    ("FINNHUB_API_KEY={a20}", ".env", "finnhub"),
    ("ALPHAVANTAGE_API_KEY={U16}", ".env", "alpha-vantage"),
    ("OPENWEATHERMAP_API_KEY={h32}", ".env", "openweather"),
    ("WEATHERAPI_KEY={h31}", ".env", "weatherapi"),
    ("SHODAN_API_KEY={a32}", ".env", "shodan"),
    ("VIRUSTOTAL_API_KEY={h64}", ".env", "virustotal"),
    ("ABUSEIPDB_API_KEY={h80}", ".env", "abuseipdb"),
    ("IPINFO_TOKEN={h14}", ".env", "ipinfo"),
    ("BROWSERSTACK_ACCESS_KEY={a20}", ".env", "browserstack"),
    ("LAMBDATEST_ACCESS_KEY={a50}", ".env", "lambdatest"),
    ("BUGSNAG_API_KEY={h32}", ".env", "bugsnag"),
    ("ROLLBAR_ACCESS_TOKEN={h32}", ".env", "rollbar"),
    ("HONEYBADGER_API_KEY={a24}", ".env", "honeybadger"),
    ("LOGDNA_INGESTION_KEY={h32}", ".env", "logdna"),
    ("LOGZIO_TOKEN={a32}", ".env", "logz-io"),
    ("SUMO_LOGIC_ACCESS_KEY={a64}", ".env", "sumo-logic"),
    ("HONEYCOMB_API_KEY={a22}", ".env", "honeycomb"),
    ("STATUSCAKE_API_TOKEN={a30}", ".env", "statuscake"),
    ("CONTENTFUL_ACCESS_TOKEN={u43}", ".env", "contentful"),
    ("STORYBLOK_TOKEN={a24}", ".env", "storyblok"),
    ("DATOCMS_API_TOKEN={h30}", ".env", "datocms"),
    ("TYPESENSE_API_KEY={a32}", ".env", "typesense"),
    ("CLOUDINARY_API_SECRET={u27}", ".env", "cloudinary"),
    ("UPLOADCARE_SECRET_KEY={h20}", ".env", "uploadcare"),
    ("DIGITAL_OCEAN_SPACES_SECRET={b43}", ".env", "digitalocean"),
    ("BACKBLAZE_APPLICATION_KEY={a31}", ".env", "backblaze"),
    ("WASABI_SECRET_KEY={a40}", ".env", "wasabi"),
    ("NETLIFY_AUTH_TOKEN={u43}", ".env", "netlify"),
    ("VERCEL_TOKEN={a24}", ".env", "vercel"),
    ("UPSTASH_REDIS_REST_TOKEN={u60}", ".env", "upstash"),
    ("PLANETSCALE_PASSWORD={a43}", ".env", "planetscale"),
    ("SNOWFLAKE_PASSWORD={a20}", ".env", "snowflake"),
    ("CONFLUENT_API_SECRET={a64}", ".env", "confluent"),
    ("DOPPLER_TOKEN={a40}", ".env", "doppler"),
    ("TAILSCALE_AUTHKEY={a40}", ".env", "tailscale"),
    ("NGROK_AUTHTOKEN={a48}", ".env", "ngrok"),
    ("ZOHO_CLIENT_SECRET={h42}", ".env", "zoho"),
    ("CALENDLY_API_KEY={a40}", ".env", "calendly"),
    ("TYPEFORM_TOKEN={a44}", ".env", "typeform"),
    ("ELEVENLABS_API_KEY={h32}", ".env", "elevenlabs"),
    ("ASSEMBLYAI_API_KEY={h32}", ".env", "assemblyai"),
    ("DEEPGRAM_API_KEY={h40}", ".env", "deepgram"),
    ("TOGETHER_AI_API_KEY={h64}", ".env", "together-ai"),
    ("WANDB_API_KEY={h40}", ".env", "weights-and-biases"),
    ("MAPBOX_SECRET_TOKEN={a40}", ".env", "mapbox"),
    ("GEOAPIFY_API_KEY={h32}", ".env", "geoapify"),
    ("SPOTIFY_CLIENT_SECRET={h32}", ".env", "spotify"),
    ("TWITCH_CLIENT_SECRET={l30}", ".env", "twitch"),
    ("DISCORD_BOT_TOKEN={a59}", ".env", "discord"),
    ("SHIPPO_API_TOKEN={a40}", ".env", "shippo"),
    ("CROWDIN_PERSONAL_TOKEN={h80}", ".env", "crowdin"),
    ("LOKALISE_API_TOKEN={h40}", ".env", "lokalise"),
    ("ZEROBOUNCE_API_KEY={h32}", ".env", "zerobounce"),
    ("BRAZE_API_KEY={uuid}", ".env", "braze"),
    ("COINMARKETCAP_API_KEY={uuid}", ".env", "coinmarketcap"),
    ("saucelabs.accessKey: {uuid}", "application.yml", "sauce-labs"),
    ("MONGODB_ATLAS_PRIVATE_KEY={uuid}", ".env", "mongodb-atlas"),
]


_FIELD = re.compile(r"\{([a-zA-Z])(\d+)\}")
_ENTROPY = EntropyDetector()


def _random_value(template: str) -> str:
    """``template`` with its one value field filled by a value that passes the entropy bar (the
    detector's precondition; a random draw misses it a few times in a hundred)."""
    field = _FIELD.search(template)
    if field is None:
        return template  # a UUID
    for _ in range(100):
        value = expand(field.group(0))
        if _ENTROPY.passes_bar(value.encode()) is not None and not_a_value(value.encode()) is None:
            return template[: field.start()] + value.replace("{", "{{").replace("}", "}}") + template[field.end() :]
    raise AssertionError(template)


def _found(text: str, path: str) -> list[str]:
    return [h.rule_id for h in SCANNER.scan_bytes(text.encode(), path=f"app/{path}")]


@pytest.mark.parametrize(("template", "path", "slug"), POSITIVES)
def test_a_vendor_credential_is_named_by_its_vendor(template: str, path: str, slug: str) -> None:
    for _ in range(3):
        text = expand(_random_value(template))
        hits = [h for h in SCANNER.scan_bytes(text.encode(), path=f"app/{path}") if h.severity.value != "low"]
        assert len(hits) == 1, text
        if hits[0].rule_id.startswith("vendor-context-"):
            assert hits[0].rule_id == f"vendor-context-{slug}", text
            assert hits[0].severity.value == "high" and hits[0].confidence == "medium"
            assert hits[0].description.endswith("credential (by its name)")
        else:  # a rule of the vendor's own format leads (the name-based match lies in its span)
            assert hits[0].detector == "pattern" and hits[0].rule_id not in GENERIC_RULES, (text, hits[0].rule_id)


def test_it_replaces_the_entropy_finding_and_a_vendor_format_leads() -> None:
    text = expand(_random_value("mixpanel:\n  api_secret: {h32}\n"))
    (hit,) = SCANNER.scan_bytes(text.encode(), path="app/values.yaml")
    # the generic rules and entropy on the same value fold into it (entropy inside the generic
    # helm-values rule's span is already part of that rule's match)
    assert hit.rule_id == "vendor-context-mixpanel"
    assert {"high-entropy-assignment", "helm-values-credential"} & set(hit.also)
    (hit,) = SCANNER.scan_bytes(expand(_random_value("SENDBIRD_TOKEN={a32}\n")).encode(), path="app/.env")
    assert hit.rule_id == "vendor-context-sendbird" and hit.also == ("dotenv-secret",)
    hits = SCANNER.scan_bytes(expand("STRIPE_SECRET_KEY=sk_live_{a32}\n").encode(), path="app/.env")
    (lead,) = [h for h in hits if h.severity.value in ("high", "critical")]
    assert lead.rule_id.startswith("stripe-") and lead.detector == "pattern"
    hits = SCANNER.scan_bytes(expand(_random_value("const twilioAuthToken = '{h32}';\n")).encode(), path="app/a.js")
    assert [h.rule_id for h in hits] == ["twilio-auth-token"]


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("SENDBIRD_API_TOKEN=${{SENDBIRD_API_TOKEN}}", ".env"),  # a reference
        ("SENDBIRD_API_TOKEN=changeme", ".env"),  # a placeholder
        ("SENDBIRD_API_TOKEN=your-sendbird-api-token", ".env"),  # words
        ("SENDBIRD_API_TOKEN=xxxxxxxxxxxxxxxxxxxx", ".env"),
        ("mixpanel_secret = settings.mixpanel.secret_value", "settings.py"),  # code
        ("mixpanelSecret = getMixpanelSecret(config)", "app.js"),  # code
        ("mixpanel_token = os.environ['MIXPANEL_TOKEN']", "settings.py"),
        ("mixpanel_token = MIXPANEL_TOKEN_FROM_ENV", "app.ini"),  # an identifier
        ("twilio_secret: /run/secrets/twilio_auth_token", "config.yml"),  # a path
        ("mixpanel_project_id = {a24}", ".env"),  # a vendor, no credential word
        ("SENDBIRD_APP_ID={uuid}", ".env"),
        ("MIXPANEL_TOKEN = {a24}", "src/app.py"),  # bare in source code: an expression
        ("boxed_token_counter = {a24}", "config.ini"),  # not a vendor name
        ("mailbox_password = {a24}", "config.ini"),
        ("iterable_token = {a24}", "src/app.py"),
    ],
)
def test_not_a_vendor_credential(template: str, path: str) -> None:
    text = expand(template)
    assert not [r for r in _found(text, path) if r.startswith("vendor-context-")], text


def test_a_uuid_needs_a_vendor_name() -> None:
    for text in ("API_TOKEN={uuid}", "request_id_token: {uuid}", "SENDBIRD_APP_ID={uuid}"):
        hits = SCANNER.scan_bytes(expand(text).encode(), path="app/config.yml")
        assert not [h for h in hits if h.detector in ("vendor-context", "entropy")], text


def test_a_credential_word_without_a_known_vendor_stays_entropy() -> None:
    for name in ("api_token", "acme_widgets_secret", "internal_service_password", "foo.apiKey"):
        text = expand(_random_value(name + ": '{a24}'\n"))
        hits = SCANNER.scan_bytes(text.encode(), path="app/config.yml")
        assert [h.rule_id for h in hits] == ["high-entropy-assignment"], text


def test_vendors_are_many_and_well_formed() -> None:
    vendors = builtin_vendors()
    assert len({v.display for v in vendors}) >= 800
    names = [v.name for v in vendors]
    assert len(names) == len(set(names))
    for v in vendors:
        assert len(v.name.replace("_", "")) >= 4 and re.fullmatch(r"[a-z0-9_]+", v.name), v
        assert re.fullmatch(r"[a-z0-9-]+", v.slug), v
    for word in ("box", "front", "close", "stream", "segment", "unit", "square", "heap"):
        assert word not in names


def test_a_short_or_common_name_must_stand_as_a_word() -> None:
    vendors = tuple(parse_vendors("okta = Okta\n~iterable = Iterable\nsendbird = Sendbird\n"))
    d = VendorContextDetector(vendors=vendors)
    assert d._lookup(b"OKTA_API_TOKEN") is not None
    assert d._lookup(b"oktaApiToken") is not None
    assert d._lookup(b"boktaApiToken") is None
    assert d._lookup(b"ITERABLE_API_KEY") is not None
    assert d._lookup(b"noniterable_api_key") is None
    assert d._lookup(b"mysendbirdtoken") is not None  # long and distinctive: anywhere in the name
    with pytest.raises(ValueError):
        parse_vendors("box = Box\n")
