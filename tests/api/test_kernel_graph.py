"""The module graph: discovery, load order and every wiring finding, read without calling a provider.

Two kinds of graphs are used: small containers declared here (to pin down the algorithm),
and the shipped container plus extra modules from ``tests.fixtures_modules`` loaded the
way ``CREDIT_MODULES_EXTRA`` loads them (to pin down what an operator sees).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from dependency_injector import containers, providers

import app.kernel.discovery as discovery
from app import build_container, plan_modules
from app.config import load_settings
from app.kernel import findings as codes
from app.kernel.discovery import FoundModule, extra_modules, load_import_path, scan_package
from app.kernel.findings import Finding, WiringError
from app.kernel.graph import build_plan, elementary_cycles, topological_order, wire_extra_modules
from app.kernel.module import Module, is_module_class
from app.modules.audit_module import AuditModule
from app.modules.connection_api import ConnectionApiModule
from app.modules.integration_module import IntegrationModule
from app.modules.notification_module import NotificationModule
from app.modules.reporting_module import ReportingModule
from app.modules.transactions_module import TransactionsModule
from app.modules.user_management import UserManagementModule
from app.modules.wallet_module import WalletModule
from tests import fixtures_modules

SHIPPED_ORDER = [
    "connection_api",
    "user_management",
    "audit_module",
    "wallet_module",
    "notification_module",
    "transactions_module",
    "integration_module",
    "reporting_module",
]
FX = "tests.fixtures_modules"

# -- small modules for hand-built containers ----------------------------------------------
CALLS: list[str] = []


class _Recording(Module):
    def __init__(self, **deps) -> None:
        CALLS.append(self.NAME)
        self.deps = deps


def module_class(name: str, *deps: str) -> type:
    """A module class named `name` declaring `deps`; its constructor records the call."""
    return type(f"M_{name}", (_Recording,), {"NAME": name, "DEPENDENCIES": tuple(deps)})


def container_of(*specs: tuple[str, tuple[str, ...], tuple[str, ...]]) -> containers.DynamicContainer:
    """A container with one Singleton per (name, declared, received) spec, in the given order.

    Every module receives exactly the providers named in `received`, by keyword.
    """
    container = containers.DynamicContainer()
    made = {name: providers.Singleton(module_class(name, *declared)) for name, declared, _ in specs}
    for name, _, received in specs:
        made[name].add_kwargs(**{dep: made[dep] for dep in received})
        container.set_provider(name, made[name])
    return container


def wired(name: str, *deps: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A module spec whose declared dependencies are the ones it receives."""
    return (name, deps, deps)


def codes_of(plan) -> list[str]:
    return [f.code for f in plan.findings]


def only(plan, code: str) -> list[Finding]:
    return [f for f in plan.findings if f.code == code]


@pytest.fixture(autouse=True)
def _clean_records():
    CALLS.clear()
    fixtures_modules.reset()
    yield
    CALLS.clear()
    fixtures_modules.reset()


@pytest.fixture
def plan_with(tmp_path):
    """Plan the shipped container plus extras / disabled modules, as create_app would."""

    def make(extra: tuple[str, ...] = (), disabled: tuple[str, ...] = ()):
        settings = load_settings(
            environ={},
            database_url=f"sqlite:///{tmp_path / 'never-opened.sqlite3'}",
            instance_path=str(tmp_path),
            secret_key="graph-tests-0123456789abcdef0123456",
            modules_extra=",".join(extra),
            modules_disabled=",".join(disabled),
        )
        container = build_container(settings)
        return plan_modules(container, settings)

    return make


# -- load order ------------------------------------------------------------------------------
def test_shipped_graph_is_clean_and_ordered_dependencies_first(plan_with):
    plan = plan_with()
    assert plan.findings == []
    assert plan.load_order == SHIPPED_ORDER
    assert {n: plan.nodes[n].dependencies for n in SHIPPED_ORDER} == {
        "connection_api": (),
        "user_management": ("connection_api",),
        "audit_module": ("connection_api", "user_management"),
        "wallet_module": ("connection_api", "user_management"),
        "notification_module": ("connection_api", "user_management", "wallet_module"),
        "transactions_module": ("connection_api", "user_management", "wallet_module"),
        "integration_module": ("connection_api", "transactions_module", "user_management", "wallet_module"),
        "reporting_module": ("connection_api", "transactions_module", "user_management", "wallet_module"),
    }
    # Declared and actually received dependencies agree for every shipped module.
    for node in plan.nodes.values():
        assert set(node.declared) == set(node.actual), node.name
    assert {n: plan.nodes[n].cls for n in SHIPPED_ORDER} == {
        "connection_api": ConnectionApiModule,
        "user_management": UserManagementModule,
        "audit_module": AuditModule,
        "wallet_module": WalletModule,
        "notification_module": NotificationModule,
        "transactions_module": TransactionsModule,
        "integration_module": IntegrationModule,
        "reporting_module": ReportingModule,
    }


def test_planning_calls_no_provider():
    container = container_of(wired("base"), wired("mid", "base"), wired("top", "mid", "base"))
    plan = build_plan(container)
    assert plan.load_order == ["base", "mid", "top"]
    assert CALLS == []
    assert all(p.last_overriding is None for p in container.providers.values())


def test_planning_leaves_extras_to_be_wired_first():
    """build_plan only reads: an extra module without a provider is reported, not given one."""

    class Extra(Module):
        NAME, DEPENDENCIES = "extra", ("base",)

        def __init__(self, base) -> None:
            CALLS.append(self.NAME)

    container = container_of(wired("base"))
    extra = FoundModule(Extra, "tests.extra")
    before = dict(container.providers)
    plan = build_plan(container, extras=[extra])
    assert dict(container.providers) == before
    assert [(f.code, f.module) for f in plan.findings] == [(codes.DUPLICATE_NAME, "extra")]

    assert wire_extra_modules(container, [extra]) == []
    plan = build_plan(container, extras=[extra])
    assert plan.findings == [] and plan.load_order == ["base", "extra"]
    assert plan.nodes["extra"].source == "tests.extra" and plan.nodes["extra"].actual == ("base",)
    assert CALLS == []


def test_order_is_dependencies_first_with_ties_broken_by_name():
    container = container_of(
        wired("top", "mid", "base_a"),
        wired("mid", "base_b"),
        wired("leaf_z"),
        wired("base_b"),
        wired("base_a"),
    )
    plan = build_plan(container)
    assert plan.findings == []
    # Kahn's algorithm with a min-heap: among the modules whose dependencies are all
    # loaded, the smallest name goes next.
    assert plan.load_order == ["base_a", "base_b", "leaf_z", "mid", "top"]


def test_order_does_not_depend_on_declaration_order():
    class Forward(containers.DeclarativeContainer):
        base = providers.Singleton(module_class("base"))
        left = providers.Singleton(module_class("left", "base"), base=base)
        right = providers.Singleton(module_class("right", "base"), base=base)
        top = providers.Singleton(module_class("top", "left", "right"), left=left, right=right)

    class Backward(containers.DeclarativeContainer):
        base = providers.Singleton(module_class("base"))
        right = providers.Singleton(module_class("right", "base"), base=base)
        left = providers.Singleton(module_class("left", "base"), base=base)
        top = providers.Singleton(module_class("top", "left", "right"), right=right, left=left)

    forward, backward = build_plan(Forward()), build_plan(Backward())
    assert forward.load_order == backward.load_order == ["base", "left", "right", "top"]
    assert forward.findings == backward.findings == []
    assert CALLS == []


def test_every_module_loads_after_all_of_its_dependencies():
    specs = [wired("m00")]
    for i in range(1, 30):
        # A deterministic tangle of edges towards lower numbers.
        deps = tuple(sorted({f"m{(i * 7 + k) % i:02d}" for k in range(1, 4)}))
        specs.append(wired(f"m{i:02d}", *deps))
    plan = build_plan(container_of(*reversed(specs)))
    assert plan.findings == []
    assert sorted(plan.load_order) == sorted(s[0] for s in specs)
    position = {name: i for i, name in enumerate(plan.load_order)}
    for name, node in plan.nodes.items():
        for dep in node.dependencies:
            assert position[dep] < position[name], (dep, name)


def test_topological_order_leaves_cycle_members_and_their_dependents_out():
    graph = {"a": ("b",), "b": ("a",), "c": (), "d": ("a",)}
    assert topological_order(graph) == ["c"]


# -- cycles ------------------------------------------------------------------------------------
def test_cycle_is_reported_with_the_whole_path_before_any_call():
    # Declared in an order that does not start at the smallest name.
    container = container_of(wired("gamma", "alpha"), wired("beta", "gamma"), wired("alpha", "beta"))
    plan = build_plan(container)
    cycles = only(plan, codes.CYCLE)
    assert [f.message for f in cycles] == ["dependency cycle: alpha -> beta -> gamma -> alpha"]
    assert cycles[0].is_error and cycles[0].hint
    assert plan.errors == cycles
    assert plan.load_order == []  # nothing on a cycle can be ordered
    assert CALLS == []


def test_every_cycle_is_reported_at_once():
    container = container_of(
        wired("alpha", "beta"),
        wired("beta", "gamma"),
        wired("gamma", "alpha"),
        wired("delta", "epsilon"),
        wired("epsilon", "delta"),
        wired("selfish", "selfish"),
        wired("fine"),
    )
    plan = build_plan(container)
    assert sorted(f.message for f in only(plan, codes.CYCLE)) == [
        "dependency cycle: alpha -> beta -> gamma -> alpha",
        "dependency cycle: delta -> epsilon -> delta",
        "dependency cycle: selfish -> selfish",
    ]
    assert plan.load_order == ["fine"]
    assert CALLS == []


def test_overlapping_cycles_are_each_reported():
    # a -> b -> a and a -> c -> a share a.
    graph = {"a": ("b", "c"), "b": ("a",), "c": ("a",)}
    assert elementary_cycles(graph) == [["a", "b", "a"], ["a", "c", "a"]]


def test_cycle_through_extra_modules(plan_with):
    plan = plan_with(extra=(f"{FX}.cycle:Alpha", f"{FX}.cycle:Beta", f"{FX}.cycle:Gamma"))
    assert [f.message for f in only(plan, codes.CYCLE)] == ["dependency cycle: alpha -> beta -> gamma -> alpha"]
    # The shipped modules are unaffected and still ordered.
    assert plan.load_order == SHIPPED_ORDER
    assert fixtures_modules.EVENTS == []


def test_provider_cycle_among_services_is_reported():
    """A loop among non-module providers would crash at call time; it is a finding."""

    def service(**_):
        raise AssertionError("never called")

    container = containers.DynamicContainer()
    svc_a = providers.Factory(service)
    svc_b = providers.Factory(service, svc_a=svc_a)
    svc_a.add_kwargs(svc_b=svc_b)
    container.set_provider("svc_a", svc_a)
    container.set_provider("svc_b", svc_b)
    container.set_provider("user", providers.Singleton(module_class("user"), svc=svc_a))
    plan = build_plan(container)
    messages = [f.message for f in only(plan, codes.CYCLE)]
    assert messages == ["provider cycle: svc_a -> svc_b -> svc_a"]
    assert CALLS == []


# -- dependencies that do not match -------------------------------------------------------
def test_unknown_dependency_suggests_the_closest_name(plan_with):
    plan = plan_with(extra=(f"{FX}.problems:Typo",))
    [finding] = only(plan, codes.UNKNOWN_DEPENDENCY)
    assert finding.module == "typo_module"
    assert "'walet_module'" in finding.message
    assert "did you mean 'wallet_module'" in finding.hint
    assert finding.is_error


def test_unknown_dependency_without_close_match_lists_known_modules():
    plan = build_plan(container_of(("lonely", ("zzzzqqq",), ()), wired("other")))
    [finding] = only(plan, codes.UNKNOWN_DEPENDENCY)
    assert "did you mean" not in finding.hint
    assert "lonely" in finding.hint and "other" in finding.hint


def test_received_but_undeclared_module_is_an_error(plan_with):
    plan = plan_with(extra=(f"{FX}.problems:Sneaky",))
    [finding] = only(plan, codes.UNDECLARED_DEPENDENCY)
    assert finding.module == "sneaky"
    assert "wallet_module" in finding.message
    assert finding.is_error
    assert not only(plan, codes.UNUSED_DEPENDENCY)


def test_declared_but_unused_module_is_a_warning(plan_with):
    plan = plan_with(extra=(f"{FX}.problems:Lazy",))
    [finding] = only(plan, codes.UNUSED_DEPENDENCY)
    assert finding.module == "lazy"
    assert "wallet_module" in finding.message
    assert not finding.is_error
    assert plan.errors == []
    # A declared dependency still orders the load even when it is not received.
    assert plan.load_order.index("lazy") > plan.load_order.index("wallet_module")


def test_dependency_received_through_a_service_counts_as_received():
    """Module -> service provider -> module is a real edge (and must be declared)."""
    container = containers.DynamicContainer()
    base = providers.Singleton(module_class("base"))
    service = providers.Factory(dict, base=base)
    container.set_provider("base", base)
    container.set_provider("service", service)
    container.set_provider("declares", providers.Singleton(module_class("declares", "base"), service=service))
    container.set_provider("hides", providers.Singleton(module_class("hides"), service=service))
    plan = build_plan(container)
    assert plan.nodes["declares"].actual == ("base",)
    assert [(f.code, f.module) for f in plan.findings] == [(codes.UNDECLARED_DEPENDENCY, "hides")]
    assert plan.load_order == ["base", "declares", "hides"]


def test_an_override_is_what_the_graph_reads():
    """The graph follows provider.overridden to what will really run."""
    container = container_of(wired("base"), wired("other"), wired("top", "base"))
    replacement = module_class("top", "base")
    container.top.override(providers.Singleton(replacement, other=container.other))
    plan = build_plan(container)
    assert plan.nodes["top"].cls is replacement
    assert plan.nodes["top"].actual == ("other",)
    assert sorted((f.code, f.module) for f in plan.findings) == [
        (codes.UNDECLARED_DEPENDENCY, "top"),
        (codes.UNUSED_DEPENDENCY, "top"),
    ]
    container.top.reset_override()
    assert build_plan(container).findings == []


def test_selector_contributes_only_its_active_branch():
    container = containers.DynamicContainer()
    container.set_provider("config", providers.Configuration())
    container.config.from_dict({"flavour": "one"})
    one = providers.Singleton(module_class("one"))
    two = providers.Singleton(module_class("two"))
    container.set_provider("one", one)
    container.set_provider("two", two)
    chosen = providers.Selector(
        container.config.flavour, one=providers.Factory(dict, m=one), two=providers.Factory(dict, m=two)
    )
    container.set_provider("chosen", chosen)
    container.set_provider("user", providers.Singleton(module_class("user", "one"), svc=chosen))
    plan = build_plan(container)
    assert plan.nodes["user"].actual == ("one",)
    assert plan.findings == []
    assert CALLS == []


# -- names, discovery and configuration ---------------------------------------------------
def test_extra_module_reusing_a_shipped_name_is_a_duplicate(plan_with):
    plan = plan_with(extra=(f"{FX}.problems:Impostor",))
    [finding] = only(plan, codes.DUPLICATE_NAME)
    assert finding.module == "wallet_module" and finding.is_error
    assert "Impostor" in finding.message
    # The shipped wallet module keeps its provider.
    assert plan.nodes["wallet_module"].cls is WalletModule


def test_extra_module_named_like_an_infrastructure_provider_is_a_duplicate(plan_with):
    """It cannot get a provider under its name; it must not vanish silently."""
    plan = plan_with(extra=(f"{FX}.problems:NamedLikeInfrastructure",))
    [finding] = plan.findings
    assert (finding.code, finding.module) == (codes.DUPLICATE_NAME, "cache")
    assert "NamedLikeInfrastructure" in finding.message
    assert "cache" not in plan.nodes


def test_two_extra_modules_with_one_name_are_a_duplicate(plan_with):
    plan = plan_with(extra=(f"{FX}.problems:Lazy", f"{FX}.problems:OtherImpostor"))
    [finding] = only(plan, codes.DUPLICATE_NAME)
    assert finding.module == "lazy"
    assert "OtherImpostor" in finding.message


def test_two_providers_of_one_module_name_are_a_duplicate():
    cls = module_class("twin")
    container = containers.DynamicContainer()
    container.set_provider("twin", providers.Singleton(cls))
    container.set_provider("twin_again", providers.Singleton(cls))
    plan = build_plan(container)
    [finding] = only(plan, codes.DUPLICATE_NAME)
    assert finding.module == "twin" and "twin_again" in finding.message


def test_module_class_found_but_not_wired_is_a_finding():
    container = container_of(wired("base"))
    unwired = module_class("forgotten", "base")
    scanned = [FoundModule(container.base.provides, "app.modules.base"), FoundModule(unwired, "app.modules.forgotten")]
    plan = build_plan(container, scanned=scanned)
    [finding] = plan.findings
    assert finding.code == codes.NOT_WIRED
    assert finding.module == "forgotten"
    assert "app.modules.forgotten" in finding.message
    assert not finding.is_error
    assert plan.load_order == ["base"]
    assert plan.nodes["base"].source == "app.modules.base"


def test_scan_finds_the_shipped_module_classes():
    found = scan_package("app.modules")
    assert {f.cls for f in found} >= {ConnectionApiModule, UserManagementModule, WalletModule, TransactionsModule}
    assert all(f.source == f.cls.__module__ and f.source.startswith("app.modules.") for f in found)
    assert len({f.cls for f in found}) == len(found)  # each class once


def test_scan_finds_a_class_defined_below_its_package():
    """app/modules/<name>/ may keep the class in a submodule; it is still found (once)."""
    from tests.fixtures_modules.cycle import Alpha
    from tests.fixtures_modules.nested.impl import NestedModule

    found = scan_package(FX)
    sources = {f.cls: f.source for f in found}
    assert sources[NestedModule] == f"{FX}.nested.impl"
    assert sources[Alpha] == f"{FX}.cycle"
    assert [f.cls for f in found].count(NestedModule) == 1
    assert [f.source for f in found] == sorted(f.source for f in found)


def test_unwired_class_below_a_package_is_a_finding():
    from tests.fixtures_modules.nested.impl import NestedModule

    plan = build_plan(container_of(wired("base")), scanned=scan_package(f"{FX}.nested"))
    assert [(f.code, f.module) for f in plan.findings] == [(codes.NOT_WIRED, NestedModule.NAME)]


def test_disabling_a_needed_module_is_a_warning(plan_with):
    plan = plan_with(disabled=("user_management",))
    [finding] = plan.findings
    assert finding.code == codes.DISABLED_BUT_NEEDED
    assert finding.module == "user_management"
    assert "transactions_module" in finding.message and "wallet_module" in finding.message
    assert plan.disabled == {"user_management"}
    assert plan.errors == []


def test_disabling_a_leaf_module_is_not_a_finding(plan_with):
    plan = plan_with(disabled=("integration_module",))
    assert plan.findings == []
    assert plan.disabled == {"integration_module"}


def test_disabling_an_unknown_module_is_a_warning_with_suggestion(plan_with):
    plan = plan_with(disabled=("walet_module",))
    [finding] = plan.findings
    assert finding.code == codes.UNKNOWN_DISABLED
    assert "did you mean 'wallet_module'" in finding.hint
    assert plan.disabled == set()


@pytest.mark.parametrize(
    "path",
    [
        f"{FX}.does_not_exist:Thing",
        f"{FX}.problems:NoSuchClass",
        "no_colon_here",
        f"{FX}.problems:NotAModule",
    ],
)
def test_extra_path_that_does_not_import_a_module_class_is_an_error(plan_with, path):
    plan = plan_with(extra=(path,))
    [finding] = plan.findings
    assert finding.code == codes.IMPORT_FAILED
    assert path in finding.message
    assert finding.is_error


def test_constructor_parameter_matching_no_provider_is_an_error(plan_with):
    plan = plan_with(extra=(f"{FX}.problems:NeedsMissing",))
    [finding] = plan.findings
    assert finding.code == codes.UNRESOLVED_PARAMETER
    assert finding.module == "needs_missing"
    assert "'payment_gateway'" in finding.message
    assert finding.is_error


def test_extra_module_joins_the_graph_with_injection_by_parameter_name(plan_with):
    plan = plan_with(extra=(f"{FX}.problems:Plain",))
    assert plan.findings == []
    node = plan.nodes["plain"]
    assert node.actual == ("connection_api",)
    assert node.source == f"CREDIT_MODULES_EXTRA {FX}.problems:Plain"
    assert plan.load_order == ["connection_api", "plain", "user_management", *SHIPPED_ORDER[2:]]


def test_entry_point_group_modules_join_the_graph(plan_with, monkeypatch):
    point = EntryPoint(name="plain", value=f"{FX}.problems:Plain", group=discovery.ENTRY_POINT_GROUP)

    def fake_entry_points(group):
        return [point] if group == discovery.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(discovery, "entry_points", fake_entry_points)
    found, problems = extra_modules(())
    assert problems == []
    assert [(f.cls.NAME, f.source) for f in found] == [("plain", "entry point plain")]
    plan = plan_with()
    assert "plain" in plan.load_order and plan.findings == []


def test_planning_twice_does_not_modify_the_declarative_container(plan_with):
    from containers import Container

    plan_with(extra=(f"{FX}.problems:Plain",))
    assert "plain" not in Container.providers
    assert "plain" not in plan_with().nodes


def test_load_import_path_and_is_module_class():
    assert load_import_path(f"{FX}.problems:Plain").NAME == "plain"
    with pytest.raises(ImportError):
        load_import_path("missing_colon")
    assert is_module_class(WalletModule)
    assert not is_module_class(Module)  # the base class has no NAME
    assert not is_module_class(object.__new__(WalletModule))  # an instance is not a class
    assert not is_module_class(type("Nameless", (Module,), {}))


# -- findings ----------------------------------------------------------------------------------
def test_findings_have_stable_codes_message_and_hint():
    assert (
        codes.CYCLE,
        codes.UNKNOWN_DEPENDENCY,
        codes.UNDECLARED_DEPENDENCY,
        codes.UNUSED_DEPENDENCY,
        codes.DUPLICATE_NAME,
        codes.ROUTE_COLLISION,
        codes.DISABLED_BUT_NEEDED,
        codes.NOT_WIRED,
        codes.IMPORT_FAILED,
        codes.UNRESOLVED_PARAMETER,
        codes.UNKNOWN_DISABLED,
    ) == (
        "MOD-E001",
        "MOD-E002",
        "MOD-E003",
        "MOD-W004",
        "MOD-E005",
        "MOD-E006",
        "MOD-W007",
        "MOD-W008",
        "MOD-E009",
        "MOD-E010",
        "MOD-W011",
    )
    finding = Finding(codes.CYCLE, "dependency cycle: a -> a", "break it", "a")
    assert str(finding) == "MOD-E001 [a] dependency cycle: a -> a\n    hint: break it"
    assert finding.as_dict() == {
        "code": "MOD-E001",
        "message": "dependency cycle: a -> a",
        "hint": "break it",
        "module": "a",
    }


def test_wiring_error_carries_all_findings_and_names_only_errors():
    error = Finding(codes.CYCLE, "dependency cycle: a -> a", "break it", "a")
    warning = Finding(codes.UNUSED_DEPENDENCY, "declares 'b'", "drop it", "a")
    exc = WiringError([warning, error])
    assert exc.findings == [warning, error]
    assert "MOD-E001" in str(exc) and "MOD-W004" not in str(exc)
