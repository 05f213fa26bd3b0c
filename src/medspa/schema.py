"""Every table, imported in one place for migrations and tests."""

from __future__ import annotations

from medspa.catalog import models as catalog_models
from medspa.clients import models as clients_models
from medspa.engagement import models as engagement_models
from medspa.integrations import models as integrations_models
from medspa.kit import audit_trail, outbox
from medspa.kit.db import Base
from medspa.memberships import models as memberships_models
from medspa.resources import models as resources_models
from medspa.retention import models as retention_models
from medspa.scheduling import models as scheduling_models
from medspa.security import models as security_models

metadata = Base.metadata
MODULES = (
    security_models,
    resources_models,
    catalog_models,
    clients_models,
    scheduling_models,
    retention_models,
    engagement_models,
    integrations_models,
    memberships_models,
    outbox,
    audit_trail,
)
