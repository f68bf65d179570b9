"""Certificates for cluster-link TLS tests, made with the ``openssl`` CLI (EC P-256, fast).

``DistCerts(dir)`` makes a CA and an "other" CA; ``leaf(name, host, ...)`` issues a
certificate naming ``host`` (IP SAN) signed by the CA, the other CA, itself (self-signed),
or already expired (``days=-1``: notAfter in the past).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["DistCerts"]

_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


class DistCerts:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        for ca in ("ca", "other-ca"):
            _openssl("req", "-x509", *_EC, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                     "-days", "2", "-subj", f"/CN=mqttmesh test {ca}", cwd=self.dir)
        self.ca = str(self.dir / "ca.pem")

    def leaf(self, name: str, host: str, signer: str = "ca", days: int = 2
             ) -> tuple[str, str]:
        """``(certfile, keyfile)``; signer ``ca`` | ``other-ca`` | ``self``."""
        d = self.dir
        san = f"IP:{host}" if host[0].isdigit() or ":" in host else f"DNS:{host}"
        (d / f"{name}.cnf").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
        if signer == "self":
            _openssl("req", "-x509", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.pem",
                     "-days", str(days), "-subj", f"/CN={name}", "-addext",
                     f"subjectAltName={san}", cwd=d)
        else:
            _openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={name}", cwd=d)
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{signer}.pem",
                     "-CAkey", f"{signer}.key", "-CAcreateserial", "-out", f"{name}.pem",
                     "-days", str(days), "-extfile", f"{name}.cnf", cwd=d)
        return str(d / f"{name}.pem"), str(d / f"{name}.key")

    def config(self, certfile: str, keyfile: str, extra: str = "") -> str:
        """HOCON for a node using this CA and the given certificate."""
        return (f'cluster.proto_dist = inet_tls\n'
                f'cluster.ssl_dist.certfile = "{certfile}"\n'
                f'cluster.ssl_dist.keyfile = "{keyfile}"\n'
                f'cluster.ssl_dist.cacertfile = "{self.ca}"\n{extra}')
