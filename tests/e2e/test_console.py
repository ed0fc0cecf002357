"""The web console (`saga console`) in a real headless Chromium, against the real services.

The console runs as the operator starts it (the `saga console` command, as a process), over
the same databases as the four services of the session; Playwright drives Debian's
Chromium (/usr/bin/chromium, or SAGA_TEST_CHROMIUM): no browser is downloaded.

With SAGA_CONSOLE_SCREENSHOTS=DIR the screenshots of the README (docs/console-*.png) are
written to DIR; otherwise to the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from eventing.settings import Settings
from order_svc.placement import CheckoutRequest, place_order
from payment_svc.gateway import clear_fault, set_fault
from saga_cli.dlq import list_entries
from shared_events.codec import encode
from shared_events.common import Address, LineItem
from shared_events.order import OrderPlaced, OrderPlacedPayload
from tests.e2e.harness import (
    Services,
    connect,
    new_sku,
    place,
    wait_for,
    wait_terminal,
)
from tests.e2e.kafka_tools import produce_raw
from tests.ports import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("SAGA_TEST_CHROMIUM", "/usr/bin/chromium")
# As root, in a sandbox without a network: no sandboxing of its own, no GPU, and none of
# the background connections to Google's hosts that this machine refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = "<img src=x onerror=window.__xss=1>"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("SAGA_CONSOLE_SCREENSHOTS")
    where = Path(wanted) if wanted else tmp_path_factory.mktemp("console-screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture(scope="module")
def console_url(
    services: Services, saga_exe: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`saga console` on a free port, over the session's databases."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("console") / "console.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [saga_exe, "console", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"saga console exited: {log_path.read_text()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for("the console to answer", answers, timeout=30)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does), or "
            "set SAGA_TEST_CHROMIUM",
            pytrace=False,
        )
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh profile every run
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(WAIT_MS)
        yield context
        context.close()


@pytest.fixture
def pages(browser: BrowserContext) -> Iterator[Callable[[], Page]]:
    """New tabs (call it for each one); none may raise a script error or break the CSP."""
    opened: list[Page] = []
    problems: list[str] = []

    def new_page() -> Page:
        page = browser.new_page()
        page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        page.on("console", lambda msg: problems.extend(_console_problem(msg.type, msg.text)))
        opened.append(page)
        return page

    yield new_page
    for page in opened:
        page.close()
    assert problems == []


def _console_problem(kind: str, text: str) -> list[str]:
    # The browser reports every 4xx answer as a console error; the API answers 404 for an
    # unknown order, which the page then explains: that one is expected.
    if kind != "error" or "the server responded with a status of 404" in text:
        return []
    return [f"console {kind}: {text}"]


def find(page: Page, text: str) -> None:
    box = page.get_by_placeholder("Order id or customer")
    box.fill(text)
    box.press("Enter")


def expect_timeline(page: Page, t: dict[str, Any]) -> None:
    """Every event of the trace, in order, with its producer; compensations marked."""
    expect(page.get_by_test_id("order-status")).to_have_text(t["status"])
    rows = page.get_by_test_id("timeline").locator("tbody tr")
    expect(rows).to_have_count(len(t["events"]))
    for i, e in enumerate(t["events"]):
        row = rows.nth(i)
        expect(row).to_have_attribute("data-event-type", e["event_type"])
        expect(row.locator("td.producer")).to_have_text(e["producer"])
        expect(row.locator(".event-type")).to_have_text(e["event_type"])
        marked = row.locator(".compensation-tag")
        if e["compensation"]:
            expect(row).to_have_class(re.compile(r"\bcompensation\b"))
            expect(marked).to_have_text("↩ compensation")
        else:
            expect(marked).to_have_count(0)
        if i:  # the time between steps
            expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^\+\d"))


def test_finds_orders_by_customer_and_by_id_and_shows_their_timelines(
    settings: Settings, services: Services, console_url: str, pages: Callable[[], Page], shots: Path
) -> None:
    sku = new_sku(settings, qty=5, price_minor=1250)
    customer = f"console-{uuid.uuid4().hex[:8]}"
    completed = place(settings, items={sku: 1}, customer=customer)
    compensated = place(settings, items={sku: 2}, customer=customer, country="ZZ")
    done, undone = wait_terminal(settings, completed), wait_terminal(settings, compensated)
    assert (undone["status"], undone["cancel_reason"]) == ("CANCELLED", "fulfillment_failed")
    assert len(undone["compensations"]) == 2

    page = pages()
    page.goto(f"{console_url}/")
    find(page, customer)
    expect(page).to_have_url(re.compile(r"/\?customer=console-"))
    expect(page.get_by_test_id("customer")).to_have_text(customer)
    found = page.get_by_test_id("search-results").locator("tbody tr")
    expect(found).to_have_count(2)
    expect(found.nth(0)).to_have_attribute("data-order-id", str(compensated))  # newest first
    expect(found.nth(1)).to_have_attribute("data-order-id", str(completed))
    expect(found.nth(1)).to_contain_text("COMPLETED")

    unknown = uuid.uuid4()
    find(page, str(unknown))
    expect(page.locator("main")).to_contain_text(f"no order {unknown} in the order database")

    find(page, str(completed))
    expect(page).to_have_url(f"{console_url}/orders/{completed}")
    expect_timeline(page, done)

    find(page, customer)
    page.get_by_role("link", name=str(compensated)).click()
    expect(page).to_have_url(f"{console_url}/orders/{compensated}")
    expect_timeline(page, undone)
    expect(page.get_by_test_id("cancel-reason")).to_have_text("fulfillment_failed")
    # The payload of an event opens under its key facts.
    placed = page.get_by_test_id("timeline").locator("tbody tr").first
    placed.locator("summary").click()
    expect(placed.locator("pre")).to_contain_text('"country": "ZZ"')
    placed.locator("summary").click()
    page.screenshot(path=str(shots / "console-timeline.png"), full_page=True)


def _dead_of(settings: Settings, order_id: uuid.UUID) -> dict[str, Any] | None:
    entries, errors = list_entries(settings, ("payment",))
    assert errors == {}
    mine = [e for e in entries if e["order_id"] == str(order_id) and e["state"] == "dead"]
    return mine[0] if mine else None


def test_dead_letter_is_shown_redriven_once_and_the_timeline_follows_by_itself(
    settings: Settings, services: Services, console_url: str, pages: Callable[[], Page], shots: Path
) -> None:
    sku = new_sku(settings, qty=3, price_minor=1500)
    # The gateway is down past the charge's retry budget: the charge is dead-lettered.
    with connect(settings, "payment") as conn:
        set_fault(conn, "down", 120)
    try:
        order_id = place(settings, items={sku: 1}, customer=f"console-{uuid.uuid4().hex[:8]}")
        entry = wait_for("the charge to be dead-lettered", lambda: _dead_of(settings, order_id))
    finally:
        with connect(settings, "payment") as conn:
            clear_fault(conn)
    dlq_id = entry["id"]
    row_of = f'tr[data-entry-id="{dlq_id}"]'

    # The order's timeline: waiting, and for what; blocked on the entry.
    timeline = pages()
    timeline.goto(f"{console_url}/orders/{order_id}")
    expect(timeline.get_by_test_id("order-status")).to_have_text("PENDING")
    expect(timeline.get_by_test_id("waiting-for")).to_contain_text("payment: charge the card")
    blocked = timeline.get_by_test_id("blocked-on").locator(row_of)
    expect(blocked).to_have_attribute("data-state", "dead")
    expect(blocked).to_contain_text("GatewayUnavailable")
    expect(blocked.get_by_role("button", name="Redrive")).to_be_visible()

    # The stuck sagas list it, held by the entry.
    stuck = pages()
    stuck.goto(f"{console_url}/stuck?older_than=0s")
    mine = stuck.get_by_test_id("stuck").locator(f'tr[data-order-id="{order_id}"]')
    expect(mine).to_contain_text(dlq_id)
    expect(mine).to_contain_text("payment: charge the card")

    # Its page shows the original message; kept open, it is a second operator's stale view.
    shown = pages()
    shown.goto(f"{console_url}/dlq/{dlq_id}")
    expect(shown.get_by_test_id("message-value")).to_contain_text(
        '"event_type": "InventoryReserved"'
    )
    expect(shown.get_by_test_id("message-value")).to_contain_text(str(order_id))

    listing = pages()
    listing.goto(f"{console_url}/dlq?service=payment")
    row = listing.locator(row_of)
    expect(row).to_contain_text("InventoryReserved")
    expect(row).to_contain_text("GatewayUnavailable")
    listing.screenshot(path=str(shots / "console-dlq.png"))

    # Redrive asks first; cancelling changes nothing.
    dialog = listing.locator("dialog#confirm")
    row.get_by_role("button", name="Redrive").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Redrive {dlq_id}?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert _dead_of(settings, order_id) is not None
    expect(row).to_be_visible()

    row.get_by_role("button", name="Redrive").click()
    dialog.get_by_role("button", name="Redrive").click()
    expect(listing.locator("#flash")).to_contain_text(f"{dlq_id}: redriven")
    expect(row).to_have_count(0)

    # The timeline, never reloaded, follows the saga to its end.
    expect(timeline.get_by_test_id("order-status")).to_have_text("COMPLETED")
    expect_timeline(timeline, wait_terminal(settings, order_id))
    expect(timeline.get_by_test_id("blocked-on")).to_have_count(0)
    assert all(e["id"] != dlq_id for e in list_entries(settings, include_retrying=True)[0])

    # The stale page's redrive: nothing is left to redrive, and nothing happens.
    shown.get_by_role("button", name="Redrive").click()
    shown.locator("dialog#confirm").get_by_role("button", name="Redrive").click()
    expect(shown.locator("#flash")).to_contain_text(f"{dlq_id}: nothing left to redrive")
    with connect(settings, "payment") as conn:
        charges = conn.execute(
            "SELECT count(*) FROM gateway_ledger WHERE order_id = %s AND kind = 'charge' "
            "AND outcome = 'approved'",
            (order_id,),
        ).fetchone()
    assert charges == (1,)


def test_live_view_moves_when_orders_flow(
    settings: Settings, services: Services, console_url: str, pages: Callable[[], Page], shots: Path
) -> None:
    page = pages()
    page.goto(f"{console_url}/live")
    ended = page.get_by_test_id("live-ended")
    expect(ended).to_have_text(re.compile(r"^[\d,]+$"))
    sku = new_sku(settings, qty=1000, price_minor=700)
    customer = f"console-live-{uuid.uuid4().hex[:8]}"
    seen = {ended.inner_text()}
    rounds, per_round = 10, 6
    for i in range(rounds):
        # Rounds that wait for each other spread the load over seconds: the chart has bars.
        country = "ZZ" if i % 4 == 3 else "US"
        ids = [
            place(settings, items={sku: 1}, customer=customer, country=country)
            for _ in range(per_round)
        ]
        for order_id in ids:
            wait_terminal(settings, order_id)
        seen.add(ended.inner_text())
    # Every one of them ended within the window, so the page counts at least them all.
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=live-ended]')"
        ".textContent.replace(/,/g, '')) >= n",
        arg=rounds * per_round,
    )
    seen.add(ended.inner_text())
    assert len(seen) > 1, f"the ended count never moved: {seen}"
    expect(page.get_by_test_id("live-rate")).not_to_have_text("0.0/s")
    expect(page.get_by_test_id("live-p50")).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s|min)$"))
    expect(page.get_by_test_id("live-p99")).to_have_text(re.compile(r"^\d+(\.\d+)? (ms|s|min)$"))
    expect(page.get_by_test_id("live-in-flight")).to_have_text(re.compile(r"^[\d,]+$"))
    page.screenshot(path=str(shots / "console-live.png"), full_page=True)


def test_markup_in_event_fields_is_shown_as_text_and_never_run(
    settings: Settings, services: Services, console_url: str, pages: Callable[[], Page]
) -> None:
    sku = new_sku(settings, qty=5, price_minor=1000)
    customer = f"{XSS}-{uuid.uuid4().hex[:6]}"
    # Through the API's own path, in the customer id and the ship-to name.
    request = CheckoutRequest.from_dict(
        {
            "customer_id": customer,
            "items": [{"sku": sku, "qty": 1}],
            "card_token": "tok_ok",
            "ship_to": {"country": "US", "name": XSS},
        }
    )
    with connect(settings, "order") as conn:
        via_api = place_order(conn, request, None).order_id
    # And as a raw OrderPlaced from another system: the producer's name itself is markup.
    raw_id = uuid.uuid4()
    event = OrderPlaced.create(
        order_id=raw_id,
        producer=XSS,
        payload=OrderPlacedPayload(
            customer_id=customer,
            items=(LineItem(sku=sku, qty=1, unit_price_minor=1000),),
            total_minor=1000,
            card_token="tok_ok",
            ship_to=Address(country="US", name=XSS),
        ),
    )
    rec = encode(event)
    # And a message no service can read, whose event type and header are markup: it reaches
    # the dead letters' pages through its error and its original bytes.
    poison_id = uuid.uuid4()
    poison = {
        "event_id": str(uuid.uuid4()),
        "event_type": XSS,
        "schema_version": 1,
        "occurred_at": "2024-01-01T00:00:00Z",
        "order_id": str(poison_id),
        "correlation_id": str(poison_id),
        "producer": XSS,
        "payload": {"note": XSS},
    }
    produce_raw(
        settings.kafka_bootstrap_servers,
        [
            ("orders.events", rec.key, rec.value, rec.headers),
            (
                "orders.events",
                str(poison_id).encode(),
                json.dumps(poison).encode(),
                [("event_type", XSS.encode())],
            ),
        ],
    )
    wait_terminal(settings, via_api)
    wait_for("the raw OrderPlaced's saga", lambda: _known(settings, raw_id), timeout=60)
    wait_terminal(settings, raw_id)
    [dead] = wait_for(
        "the unreadable message in inventory's dead letters",
        lambda: [
            e for e in list_entries(settings, ("inventory",))[0] if e["order_id"] == str(poison_id)
        ],
        timeout=60,
    )

    page = pages()
    page.goto(f"{console_url}/")
    find(page, customer)
    expect(page.get_by_test_id("customer")).to_have_text(customer)
    expect(page.get_by_test_id("search-results").locator("tbody tr")).to_have_count(2)
    assert page.evaluate("typeof window.__xss") == "undefined"

    page.goto(f"{console_url}/orders/{via_api}")
    expect(page.locator('dd[data-fact="customer"]')).to_have_text(customer)
    placed = page.get_by_test_id("timeline").locator("tbody tr").first
    placed.locator("summary").click()
    expect(placed.locator("pre")).to_contain_text(json.dumps({"name": XSS})[1:-1])
    assert page.evaluate("typeof window.__xss") == "undefined"

    page.goto(f"{console_url}/orders/{raw_id}")
    first = page.get_by_test_id("timeline").locator("tbody tr").first
    expect(first.locator("td.producer")).to_have_text(XSS)
    expect(page.get_by_text(XSS, exact=True).first).to_be_visible()
    # Nothing became an element: no image anywhere, and no handler ran.
    assert page.locator("main img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"

    page.goto(f"{console_url}/dlq")
    row = page.locator(f'tr[data-entry-id="{dead["id"]}"]')
    expect(row).to_contain_text(f"unknown event type '{XSS}'")
    page.goto(f"{console_url}/dlq/{dead['id']}")
    expect(page.get_by_role("cell", name=XSS, exact=True)).to_be_visible()  # the header
    expect(page.get_by_test_id("message-value")).to_contain_text(f'"producer": "{XSS}"')
    assert page.locator("main img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def _known(settings: Settings, order_id: uuid.UUID) -> bool:
    with connect(settings, "order") as conn:
        row = conn.execute("SELECT 1 FROM orders WHERE order_id = %s", (order_id,)).fetchone()
    return row is not None
