"""HTML templates of the connect page. Jinja2 autoescaping escapes every value rendered."""

from __future__ import annotations

import jinja2

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}Routiine{% endblock %}</title>
<style>
body { font-family: sans-serif; margin: 2rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; }
.error { color: #a00; } .notice { color: #060; }
</style></head><body>
<h1>{% block heading %}Routiine tenants{% endblock %}</h1>
{% if notice %}<p class="notice" id="notice">{{ notice }}</p>{% endif %}
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
{% block body %}{% endblock %}
</body></html>
"""

_INDEX = """{% extends "layout.html" %}
{% block body %}
<table id="tenants">
<tr><th>Tenant</th><th>Org type</th><th>Status</th><th>Last sync</th><th>Interval</th>
<th>API usage</th><th>Actions</th></tr>
{% for row in rows %}
<tr id="tenant-{{ row.tenant.tenant_id }}">
<td>{{ row.tenant.tenant_id }}</td>
<td>{{ row.org_label }}</td>
<td class="status">{{ row.tenant.status }}{% if row.tenant.status_reason %}<br><small>{{ row.tenant.status_reason }}</small>{% endif %}</td>
<td>{{ row.last_sync }}</td>
<td>{{ row.tenant.interval_minutes }} min</td>
<td>{{ row.usage }}</td>
<td>
{% if row.tenant.status != "connected" %}
<form method="post" action="/tenants/{{ row.tenant.tenant_id }}/reconnect">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<button type="submit" name="reconnect">{{ "Reconnect" if row.tenant.status == "needs_reauthorization" else "Connect" }}</button>
</form>
{% endif %}
<a href="/tenants/{{ row.tenant.tenant_id }}/mapping">Mapping</a>
</td></tr>
{% else %}
<tr><td colspan="7">No tenants yet. Connect one below.</td></tr>
{% endfor %}
</table>

<h2>Connect an org</h2>
<form method="post" action="/connect" id="connect-form">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<p><label>Tenant id <input name="tenant_id" required pattern="[a-z0-9][a-z0-9_\\-]{0,62}"></label></p>
<p>Org type:
<label><input type="radio" name="org_type" value="production" checked> Production</label>
<label><input type="radio" name="org_type" value="sandbox"> Sandbox</label>
<label><input type="radio" name="org_type" value="my_domain"> My Domain</label></p>
<p><label>My Domain <input name="my_domain" placeholder="acme or acme--uat.sandbox"></label></p>
{% if emulator_mode %}
<p><label>Login host (emulator mode only) <input name="login_url" placeholder="http://127.0.0.1:8765"></label></p>
{% endif %}
<p><button type="submit" id="connect">Connect with Salesforce</button></p>
</form>
{% endblock %}
"""

_MAPPING = """{% extends "layout.html" %}
{% block title %}Mapping of {{ tenant_id }}{% endblock %}
{% block heading %}Mapping of tenant {{ tenant_id }}{% endblock %}
{% block body %}
<form method="post" action="/tenants/{{ tenant_id }}/mapping" id="mapping-form">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<p><textarea name="mapping" rows="30" cols="100">{{ mapping_json }}</textarea></p>
<p><button type="submit" id="save">Validate against the org and save</button></p>
</form>
<p><a href="/">Back to tenants</a></p>
{% endblock %}
"""

_MESSAGE = """{% extends "layout.html" %}
{% block title %}{{ title }}{% endblock %}
{% block heading %}{{ title }}{% endblock %}
{% block body %}<p><a href="/">Back to tenants</a></p>{% endblock %}
"""

environment = jinja2.Environment(
    loader=jinja2.DictLoader(
        {
            "layout.html": _LAYOUT,
            "index.html": _INDEX,
            "mapping.html": _MAPPING,
            "message.html": _MESSAGE,
        }
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render(name: str, **context) -> str:
    context.setdefault("notice", None)
    context.setdefault("error", None)
    return environment.get_template(name).render(**context)
