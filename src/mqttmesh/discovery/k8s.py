"""`k8s` strategy: the pods behind a Service, read from its core/v1 Endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from mqttmesh.discovery.base import BaseStrategy, K8sConfig, name_part
from mqttmesh.errors import DiscoveryError

__all__ = ["K8sStrategy", "endpoint_hosts"]

log = logging.getLogger("mqttmesh.discovery.k8s")


def endpoint_hosts(endpoints: dict[str, Any], config: K8sConfig) -> list[str]:
    """Hosts of the ready addresses in an Endpoints object, shaped by `address_type`.

    As EMQX: `ip` -> the pod IP; `dns` -> `1-2-3-4.<namespace>.<suffix>` (suffix
    `pod.cluster.local`); `hostname` -> `<hostname>.<service>.<namespace>.<suffix>`
    (suffix `svc.cluster.local`). An empty suffix leaves the bare IP / hostname.
    """
    hosts: list[str] = []
    for subset in endpoints.get("subsets") or []:
        for address in subset.get("addresses") or []:
            ip = address.get("ip", "")
            if config.address_type == "ip":
                host = ip
            elif config.address_type == "dns":
                host = ip.replace(".", "-")
                if config.suffix:
                    host = f"{host}.{config.namespace}.{config.suffix}"
            elif config.address_type == "hostname":
                host = address.get("hostname", "")
                if host and config.suffix:
                    host = f"{host}.{config.service_name}.{config.namespace}.{config.suffix}"
            else:
                raise DiscoveryError(f"cluster.k8s.address_type must be ip, dns or hostname, not {config.address_type!r}")
            if host:
                hosts.append(host)
    return hosts


class K8sStrategy(BaseStrategy):
    """GET `{apiserver}/api/v1/namespaces/{namespace}/endpoints/{service_name}`.

    Authenticated with the service-account token and verified with its CA when those
    files exist (paths in `K8sConfig`, overridable for tests).
    """

    name = "k8s"

    def __init__(self, config: K8sConfig, node_name: str) -> None:
        self._config = config
        self.node_name = node_name
        self._url = (
            config.apiserver.rstrip("/")
            + "/api/v1/namespaces/"
            + urllib.parse.quote(config.namespace, safe="")
            + "/endpoints/"
            + urllib.parse.quote(config.service_name, safe="")
        )

    async def discover(self) -> list[str]:
        body = await asyncio.to_thread(self._get)
        own = name_part(self.node_name)
        return sorted(dict.fromkeys(f"{own}@{host}" for host in endpoint_hosts(body, self._config)))

    def _get(self) -> dict[str, Any]:
        config = self._config
        headers = {"Accept": "application/json"}
        token = _read(config.token_path)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        context: ssl.SSLContext | None = None
        if self._url.startswith("https:"):
            if os.path.exists(config.ca_path):
                context = ssl.create_default_context(cafile=config.ca_path)
            else:
                context = ssl.create_default_context()
        request = urllib.request.Request(self._url, headers=headers, method="GET")
        where = f"{config.namespace}/{config.service_name}"
        try:
            with urllib.request.urlopen(request, timeout=config.timeout, context=context) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise DiscoveryError(
                    f"k8s API server refused to show endpoints {where} ({exc.code} {exc.reason}); "
                    "check the service-account token and its RBAC role"
                ) from exc
            if exc.code == 404:
                raise DiscoveryError(f"k8s service endpoints {where} not found (404)") from exc
            raise DiscoveryError(f"k8s API server answered {exc.code} {exc.reason} for endpoints {where}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DiscoveryError(f"k8s API server unreachable at {config.apiserver}: {reason}") from exc
        except ValueError as exc:
            raise DiscoveryError(f"k8s API server sent invalid JSON for endpoints {where}") from exc


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""
