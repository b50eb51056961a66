"""The web console for people (legal staff, rights holders) and the public `/verify` page.

    web.py          blueprints, sign-in gate, error pages, `init_app`
    security.py     session key in the home, CSRF, cookie flags, security headers
    users.py        accounts, argon2 passwords, lockout, server-side sessions
    models.py       console tables (migration 0003)
    queries.py      read models: search, timeline, matters, witnesses, public lookup
    intake.py       uploads through the API's service path
    *_views.py      pages
"""
