"""`dns` strategy: A records give hosts, SRV records give targets and ports (dnspython)."""

from __future__ import annotations

import logging

import dns.asyncresolver
import dns.exception
import dns.resolver

from mqttmesh.discovery.base import BaseStrategy, DnsConfig, name_part, node_name_for_port
from mqttmesh.errors import DiscoveryError

__all__ = ["DnsStrategy"]

log = logging.getLogger("mqttmesh.discovery.dns")


class DnsStrategy(BaseStrategy):
    """Resolves `cluster.dns.name` each round, so nodes added later are found.

    A records: `<our name part>@<IP>` per address. SRV records: one name per target, the
    name part taken from the port when it is a cluster link port (see `node_name_for_port`).
    A name with no records (NXDOMAIN or an empty answer) is an empty list, logged once,
    not an error: the node runs standalone until records appear. A resolver that does not
    answer at all is a `DiscoveryError`, so the loop backs off.
    """

    name = "dns"

    def __init__(self, config: DnsConfig, node_name: str) -> None:
        if config.record_type not in ("a", "srv"):
            raise DiscoveryError(f"cluster.dns.record_type must be a or srv, not {config.record_type!r}")
        self._config = config
        self.node_name = node_name
        if config.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = list(config.nameservers)
            resolver.port = config.port
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = config.timeout
        resolver.timeout = config.timeout
        self._resolver = resolver
        self._empty_logged = False

    async def discover(self) -> list[str]:
        rdtype = "A" if self._config.record_type == "a" else "SRV"
        qname = self._config.name
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            if not self._empty_logged:
                log.info("DNS name %s has no %s records yet; no nodes found", qname, rdtype)
                self._empty_logged = True
            return []
        except dns.resolver.NoNameservers as exc:
            raise DiscoveryError(f"DNS servers failed to answer for {qname} {rdtype}: {exc}") from exc
        except dns.exception.Timeout as exc:
            raise DiscoveryError(f"DNS lookup of {qname} {rdtype} timed out") from exc
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"DNS lookup of {qname} {rdtype} failed: {exc}") from exc
        self._empty_logged = False
        if rdtype == "A":
            own = name_part(self.node_name)
            names = [f"{own}@{record.address}" for record in answer]
        else:
            names = [
                node_name_for_port(self.node_name, record.target.to_text(omit_final_dot=True), record.port)
                for record in answer
            ]
        return sorted(dict.fromkeys(names))
