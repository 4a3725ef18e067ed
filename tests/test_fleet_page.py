"""The status page's fleet section, in a real browser (chromium over the
DevTools protocol), with three medics on a real etcd cluster."""

from __future__ import annotations

from pathlib import Path

from tests.chromium import Page
from tests.helpers import async_wait_for
from tests.plugins.daemon import DaemonFactory
from tests.plugins.etcd import EtcdCluster
from tests.test_fleet import TOKEN, start_fleet
from tests.test_status_page import chromium, page, text_of  # noqa: F401  # fixtures


async def test_the_page_shows_the_fleet_and_its_emergency_stop(
    etcd_cluster: EtcdCluster,
    medic_daemon: DaemonFactory,
    tmp_path: Path,
    page: Page,  # noqa: F811  # the fixture
) -> None:
    (tmp_path / "up").touch()
    daemons = start_fleet(medic_daemon, etcd_cluster, tmp_path)
    await page.set_viewport(1280, 900, mobile=False)
    await page.navigate(daemons[2].url + "/")

    async def three_rows() -> bool:
        count = await page.evaluate("document.querySelectorAll('#fleet-hosts tr').length")
        return int(count) == 3

    await async_wait_for(three_rows, 10, message="the page lists the fleet's three hosts")
    assert "host-0" in await text_of(page, "#fleet-hosts")
    status, _ = daemons[0].post("/api/v1/fleet/stop", {"reason": "bad deploy"}, token=TOKEN)
    assert status == 200
    await async_wait_for(
        lambda: text_of(page, "#banner-fleet-stop"), 10, message="the stop shows on the page"
    )
    assert "bad deploy" in await text_of(page, "#banner-fleet-stop")
