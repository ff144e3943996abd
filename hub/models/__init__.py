"""Tortoise models, one module per area. Registered as the Tortoise app `hub`.

Every model a tenant owns says how to reach its tenant in `TENANT_PATH` (a Tortoise
filter path); `hub.services.scope` is the one place that uses it to scope queries.

A model docstring becomes its table comment, and Tortoise splits SQLite DDL on `;`:
keep semicolons out of model docstrings (tests/hub/test_models.py checks).
"""
from hub.models.access import (
    ApiToken,
    EmailChange,
    Invitation,
    LoginFailure,
    Membership,
    PasswordReset,
    RecoveryCode,
    Session,
    Tenant,
    User,
)
from hub.models.agents import Agent, JoinToken
from hub.models.assistant import AssistantUsage
from hub.models.alerts import AlertChannel, AlertRule, Incident, OutboxMessage
from hub.models.audit import AuditEntry
from hub.models.billing import BillingAccount, StripeEvent
from hub.models.deploy import Deployment, DeploymentTarget, Policy, PolicyVersion
from hub.models.lists import IpEntry, IpList
from hub.models.market import LibraryEntry, Template, TemplateVersion
from hub.models.metrics import MetricPoint, MetricRollup, TopSource, TrafficAggregate
from hub.models.privacy import BillingRecord, ErasureRequest

MODEL_MODULES = [
    "hub.models.access",
    "hub.models.agents",
    "hub.models.assistant",
    "hub.models.alerts",
    "hub.models.audit",
    "hub.models.billing",
    "hub.models.deploy",
    "hub.models.lists",
    "hub.models.market",
    "hub.models.metrics",
    "hub.models.privacy",
]

__all__ = [
    "Agent", "AlertChannel", "AssistantUsage", "BillingAccount", "BillingRecord", "ErasureRequest", "StripeEvent",
    "AlertRule", "ApiToken", "Incident", "OutboxMessage", "AuditEntry", "Deployment", "DeploymentTarget", "Invitation",
    "IpEntry", "IpList", "JoinToken", "LibraryEntry", "LoginFailure", "Membership", "MetricPoint", "PasswordReset",
    "EmailChange",
    "Template", "TemplateVersion",
    "MetricRollup", "Policy", "PolicyVersion", "RecoveryCode", "Session", "Tenant",
    "TopSource", "TrafficAggregate", "User", "MODEL_MODULES",
]
