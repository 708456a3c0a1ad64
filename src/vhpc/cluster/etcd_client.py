"""The manager's etcd client: v3 JSON gateway over HTTP, authenticated as etcd's root.

`HttpEtcd` implements the registry's `EtcdKV` Protocol (cluster/registry.py). With
credentials it authenticates on first use and again whenever etcd says the token is no
longer valid (tokens expire; etcd may restart). If etcd answers that auth is not enabled
(a new etcd, or one that lost its data), it sets auth up first: the `root` user with the
cluster's password, the `reader` user whose role may only read `/vhpc/`, then
`auth enable`. From then on only the manager can write (services/etcd.py).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from vhpc.errors import VhpcError
from vhpc.services import etcd as etcd_service

log = logging.getLogger(__name__)


class RegistryUnavailableError(VhpcError):
    """etcd did not answer (it may be restarting); callers retry."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with `prefix` (etcd convention)."""
    raw = prefix.encode()
    return (raw[:-1] + bytes([raw[-1] + 1])).decode()


AUTH_NOT_ENABLED = "authentication is not enabled"


class HttpEtcd:
    """EtcdKV over etcd's v3 JSON gateway (POST /v3/..., base64 keys and values)."""

    def __init__(self, url: str, timeout: float = 3.0, watch_poll: float = 5.0,
                 root_password: str | None = None) -> None:
        self.url = url
        self.watch_poll = watch_poll
        self.root_password = root_password
        self._token = ""
        self._auth_lock = threading.Lock()
        self._http = httpx.Client(base_url=url, timeout=timeout)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per keep-alive

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- auth -------------------------------------------------------------------------
    def _raw(self, path: str, body: dict[str, Any],
             headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            return self._http.post(path, json=body, headers=headers)
        except httpx.HTTPError as err:
            raise RegistryUnavailableError(f"etcd at {self.url} does not answer: {err}") from err

    def _headers(self) -> dict[str, str]:
        """The Authorization header (authenticating first if needed)."""
        if self.root_password is None:
            return {}
        with self._auth_lock:
            if not self._token:
                self._token = self._authenticate()
            return {"Authorization": self._token}

    def _authenticate(self) -> str:
        body = {"name": etcd_service.ROOT_USER, "password": self.root_password}
        response = self._raw("/v3/auth/authenticate", body)
        if response.status_code >= 400 and AUTH_NOT_ENABLED in response.text:
            self.enable_auth()
            response = self._raw("/v3/auth/authenticate", body)
            if response.status_code < 400:
                self._wipe_keys(str(response.json()["token"]))
        if response.status_code >= 400:
            raise RegistryUnavailableError(
                f"etcd refused vhpc's root login: HTTP {response.status_code} "
                f"{response.text.strip()}")
        return str(response.json()["token"])

    def enable_auth(self) -> None:
        """Create the root and reader users and turn client auth on (etcd must have it
        off: then anyone may change users, so old ones are replaced, not trusted)."""
        assert self.root_password is not None
        start, end = etcd_service.reader_permission()
        # whoever reached etcd while auth was off may have made users or roles: none stay
        users = self._raw("/v3/auth/user/list", {}).json().get("users", [])
        roles = self._raw("/v3/auth/role/list", {}).json().get("roles", [])
        steps: list[tuple[str, dict[str, Any], bool]] = [
            *[("/v3/auth/user/delete", {"name": u}, False) for u in users],
            *[("/v3/auth/role/delete", {"role": r}, False) for r in roles],
            ("/v3/auth/user/delete", {"name": etcd_service.ROOT_USER}, False),
            ("/v3/auth/user/add", {"name": etcd_service.ROOT_USER,
                                   "password": self.root_password}, True),
            ("/v3/auth/role/add", {"name": "root"}, False),
            ("/v3/auth/user/grant", {"user": etcd_service.ROOT_USER, "role": "root"}, True),
            ("/v3/auth/user/delete", {"name": etcd_service.READER_USER}, False),
            ("/v3/auth/user/add", {"name": etcd_service.READER_USER,
                                   "password": etcd_service.READER_PASSWORD}, True),
            ("/v3/auth/role/delete", {"role": "reader"}, False),
            ("/v3/auth/role/add", {"name": "reader"}, True),
            ("/v3/auth/role/grant", {"name": "reader", "perm": {
                "permType": "READ", "key": _b64(start), "range_end": _b64(end)}}, True),
            ("/v3/auth/user/grant", {"user": etcd_service.READER_USER, "role": "reader"}, True),
            ("/v3/auth/enable", {}, True),
        ]
        for path, body, must in steps:
            response = self._raw(path, body)
            if must and response.status_code >= 400:
                raise RegistryUnavailableError(f"etcd {path} failed while enabling auth: "
                                               f"HTTP {response.status_code} "
                                               f"{response.text.strip()}")
        log.info("etcd client auth enabled (root: vhpc only; reader: read /vhpc/)")

    def _wipe_keys(self, token: str) -> None:
        """Delete every key, once auth is on: vhpc had written none while it was off, so
        any key is a forgery (e.g. a node record that DNS would then serve)."""
        response = self._raw("/v3/kv/deleterange", {"key": _b64("\0"), "range_end": _b64("\0")},
                             {"Authorization": token})
        if response.status_code >= 400:
            raise RegistryUnavailableError(f"etcd refused to clear the keys written before "
                                           f"auth was on: HTTP {response.status_code}")

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._raw(path, body, self._headers())
        if response.status_code == 401 and self.root_password is not None:
            self._token = ""  # expired, or etcd restarted: log in again, once
            response = self._raw(path, body, self._headers())
        if response.status_code >= 400:
            raise RegistryUnavailableError(
                f"etcd {path} failed: HTTP {response.status_code} {response.text.strip()}")
        result: dict[str, Any] = response.json()
        return result

    # -- EtcdKV -----------------------------------------------------------------------
    def healthy(self) -> bool:
        """True once etcd answers its /health endpoint."""
        try:
            return bool(self._http.get("/health").json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False

    def get_prefix(self, prefix: str) -> tuple[dict[str, str], int]:
        body = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
        data = self._post("/v3/kv/range", body)
        values = {_unb64(kv["key"]): _unb64(kv.get("value", "")) for kv in data.get("kvs", [])}
        return values, int(data["header"]["revision"])

    def put(self, key: str, value: str, lease: int = 0) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        self._post("/v3/kv/put", body)

    def delete(self, key: str) -> None:
        self._post("/v3/kv/deleterange", {"key": _b64(key)})

    def grant(self, ttl: int) -> int:
        return int(self._post("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def keepalive(self, lease: int) -> int:
        result = self._post("/v3/lease/keepalive", {"ID": str(lease)}).get("result", {})
        return int(result.get("TTL", 0))

    def revoke(self, lease: int) -> None:
        self._post("/v3/lease/revoke", {"ID": str(lease)})

    def watch(self, prefix: str, start_revision: int, stop: threading.Event
              ) -> Iterator[int]:
        """Yield a revision for each change below `prefix`; reconnects every `watch_poll`
        seconds of silence so `stop` is honoured."""
        revision = start_revision
        request = {"create_request": {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}}
        while not stop.is_set():
            request["create_request"]["start_revision"] = str(revision)
            timeout = httpx.Timeout(3.0, read=self.watch_poll)
            try:
                with self._http.stream("POST", "/v3/watch", json=request, timeout=timeout,
                                       headers=self._headers()) as response:
                    for line in response.iter_lines():
                        if stop.is_set():
                            return
                        result = json.loads(line).get("result", {}) if line.strip() else {}
                        if result.get("canceled"):
                            self._token = ""  # most likely an expired token
                            raise RegistryUnavailableError(
                                f"etcd cancelled the watch: {result.get('cancel_reason', '')}")
                        events = result.get("events", [])
                        if events:
                            revision = max(int(e["kv"]["mod_revision"]) for e in events) + 1
                            yield revision - 1
            except httpx.ReadTimeout:
                continue
            except (httpx.HTTPError, ValueError) as err:
                raise RegistryUnavailableError(f"etcd watch failed: {err}") from err
