"""mqttmesh.access: client authentication (built-in user store) and authorization (acl.conf).

Sans-IO decisions, stdlib only; the one exception is `UserStore`, which reads and atomically
writes its JSON file when asked to. Importable by `broker` and everything to its right; it
imports only `protocol` and `errors`. Wiring and syntax: ``docs/access.md``.
"""

from mqttmesh.access.acl import (
    Acl, Action, ClientInfo, Permission, Rule, load_acl, parse_acl, topic_covers,
)
from mqttmesh.access.authn import AuthnStats, AuthResult, Authenticator
from mqttmesh.access.authz import (
    Authorizer, AuthzCache, AuthzStats, DenyAction, NoMatch, peer_host,
)
from mqttmesh.access.errors import AclParseError, UserStoreError
from mqttmesh.access.passwords import (
    DEFAULT_ITERATIONS, PasswordHash, hash_password, verify_password,
)
from mqttmesh.access.terms import read_terms
from mqttmesh.access.users import User, UserStore

__all__ = [
    "Authenticator", "AuthResult", "AuthnStats",
    "User", "UserStore", "PasswordHash", "hash_password", "verify_password",
    "DEFAULT_ITERATIONS",
    "Authorizer", "AuthzCache", "AuthzStats", "NoMatch", "DenyAction", "peer_host",
    "Acl", "Rule", "Action", "Permission", "ClientInfo", "parse_acl", "load_acl",
    "topic_covers", "read_terms",
    "AclParseError", "UserStoreError",
]
