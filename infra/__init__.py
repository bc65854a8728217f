"""infra: the composition root — settings, the `malestrom` command, embedded services, migrations.

Nothing imports `infra` except entry points and tests.
"""
