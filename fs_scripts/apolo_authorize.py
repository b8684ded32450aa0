"""Apolo authorization hook, named by the dialplan: ``python apolo_authorize``.

mod_python3 re-imports and reloads this module on every call, so it stays a shim: the work, the
settings and the keep-alive connections live in ``apolo_fs``, which stays cached in sys.modules.
"""


def handler(session: object, args: str) -> None:
    import apolo_fs

    apolo_fs.authorize_session(session, args)
