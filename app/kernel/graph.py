"""The module graph, read from the container's providers without calling any of them."""

from __future__ import annotations

import difflib
import heapq
import inspect
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from dependency_injector import providers

from app.kernel import findings as codes
from app.kernel.discovery import FoundModule
from app.kernel.findings import Finding
from app.kernel.module import Module, handles_events, is_module_class
from app.vocabulary import EVENT_DESCRIPTIONS, event_type_matches

MAX_CYCLES_REPORTED = 50


@dataclass
class ModuleNode:
    name: str
    provider: providers.Provider
    cls: type[Module]
    source: str
    declared: tuple[str, ...]
    actual: tuple[str, ...] = ()

    @property
    def critical(self) -> bool:
        return bool(getattr(self.cls, "CRITICAL", True))

    @property
    def dependencies(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.declared) | set(self.actual)))


@dataclass
class ModulePlan:
    nodes: dict[str, ModuleNode]
    load_order: list[str]
    disabled: set[str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    def dependents_of(self, name: str) -> list[str]:
        return [n for n in self.load_order if name in self.nodes[n].dependencies]


def effective(provider: providers.Provider) -> providers.Provider:
    """The provider that will really run: the last override, recursively."""
    while (overriding := provider.last_overriding) is not None:
        provider = overriding
    return provider


def _edges(provider: providers.Provider) -> list[providers.Provider]:
    provider = effective(provider)
    if isinstance(provider, providers.Selector):
        selector = provider.selector
        try:  # reading the selector option calls no factory
            active = provider.providers.get(selector()) if selector is not None else None
        except Exception:
            active = None
        return [active] if active is not None else list(provider.providers.values())
    return [p for p in provider.related if isinstance(p, providers.Provider)]


def provided_module_class(provider: providers.Provider) -> type[Module] | None:
    target = effective(provider)
    provides = getattr(target, "provides", None)
    if is_module_class(provides):
        return provides
    if isinstance(provides, Module):
        return type(provides)
    original = getattr(provider, "provides", None)
    return original if is_module_class(original) else None


def _module_edges(node_provider, module_ids: dict[int, str]) -> tuple[str, ...]:
    """Modules reached from a module provider through non-module providers."""
    seen: set[int] = set()
    reached: set[str] = set()
    stack = _edges(node_provider)
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if id(current) in module_ids:
            reached.add(module_ids[id(current)])
            continue
        stack.extend(_edges(current))
    return tuple(sorted(reached))


def elementary_cycles(graph: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """Every simple cycle, each starting at its smallest name, in a stable order."""
    cycles: list[list[str]] = []
    names = sorted(graph)
    for start in names:
        stack = [(start, [start])]
        while stack and len(cycles) < MAX_CYCLES_REPORTED:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ()), reverse=True):
                if nxt == start:
                    cycles.append(path + [start])
                elif nxt > start and nxt not in path and nxt in graph:
                    stack.append((nxt, path + [nxt]))
    return sorted(cycles, key=lambda c: (len(c), c))


def _provider_cycle(container, module_ids: dict[int, str]) -> list[str] | None:
    """A cycle among non-module providers (a service graph loop), named by provider."""
    names = {id(p): n for n, p in container.providers.items()}
    state: dict[int, int] = {}

    def label(p):
        return names.get(id(p), type(p).__name__)

    for root in container.providers.values():
        if id(root) in state:
            continue
        stack = [(root, iter(_edges(root)))]
        path = [root]
        state[id(root)] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[id(node)] = 2
                stack.pop()
                path.pop()
                continue
            if state.get(id(child)) == 1:
                loop = path[path.index(child) :] + [child]
                if not any(id(p) in module_ids for p in loop):
                    return [label(p) for p in loop]
                continue
            if id(child) not in state:
                state[id(child)] = 1
                stack.append((child, iter(_edges(child))))
                path.append(child)
    return None


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else f"known modules: {', '.join(sorted(known))}"


def wire_extra_modules(container, extras: list[FoundModule]) -> list[Finding]:
    """Give each extra module a provider, injecting constructor parameters by name."""
    problems = []
    created = []
    for found in extras:
        name = found.cls.NAME
        if name in container.providers:
            continue  # reported as a duplicate name by the plan
        provider = providers.Singleton(found.cls)
        container.set_provider(name, provider)
        created.append((found, provider))
    for found, provider in created:
        kwargs = {}
        for param in inspect.signature(found.cls).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name in container.providers:
                kwargs[param.name] = container.providers[param.name]
            elif param.default is inspect.Parameter.empty:
                problems.append(
                    Finding(
                        codes.UNRESOLVED_PARAMETER,
                        f"constructor parameter '{param.name}' matches no module or infrastructure provider",
                        f"name it after a provider ({_suggest(param.name, container.providers)}) or give it a default",
                        found.cls.NAME,
                    )
                )
        provider.add_kwargs(**kwargs)
    return problems


def build_plan(
    container,
    disabled: Collection[str] = (),
    scanned: Sequence[FoundModule] = (),
    extras: Sequence[FoundModule] = (),
) -> ModulePlan:
    """Read the module graph from the container and check it; nothing is called or changed.

    Extra modules must already have their providers (wire_extra_modules, run before planning).
    """
    nodes = module_nodes(container, {found.cls: found.source for found in [*scanned, *extras]})
    graph = {name: tuple(d for d in node.dependencies if d in nodes) for name, node in nodes.items()}
    disabled_set = set(disabled)
    findings = [
        *check_duplicates(container, nodes, extras),
        *check_not_wired(nodes, scanned),
        *check_dependencies(nodes),
        *check_cycles(container, nodes, graph),
        *check_disabled(nodes, graph, disabled_set),
        *check_event_types(nodes),
    ]
    return ModulePlan(nodes, topological_order(graph), disabled_set & set(nodes), findings)


def _module_providers(container) -> Iterator[tuple[str, providers.Provider, type[Module]]]:
    """(provider name, provider, module class) of every provider that provides a module."""
    for provider_name, provider in container.providers.items():
        cls = provided_module_class(provider)
        if cls is not None:
            yield provider_name, provider, cls


def module_nodes(container, sources: dict[type, str]) -> dict[str, ModuleNode]:
    """One node per module name (the first provider of a name wins), with the modules each
    one's provider really receives."""
    nodes: dict[str, ModuleNode] = {}
    for provider_name, provider, cls in _module_providers(container):
        if cls.NAME not in nodes:
            source = sources.get(cls) or f"containers.{provider_name}"
            nodes[cls.NAME] = ModuleNode(cls.NAME, provider, cls, source, tuple(getattr(cls, "DEPENDENCIES", ())))
    module_ids = _module_ids(nodes)
    for node in nodes.values():
        node.actual = _module_edges(node.provider, module_ids)
    return nodes


def _module_ids(nodes: dict[str, ModuleNode]) -> dict[int, str]:
    return {id(node.provider): name for name, node in nodes.items()}


def check_duplicates(container, nodes: dict[str, ModuleNode], extras: Sequence[FoundModule]) -> list[Finding]:
    """Two providers of one module name, or an extra module whose name is taken."""
    findings = []
    seen: set[str] = set()
    for provider_name, _, cls in _module_providers(container):
        if cls.NAME in seen:
            findings.append(
                Finding(
                    codes.DUPLICATE_NAME,
                    f"module name '{cls.NAME}' is provided by both '{nodes[cls.NAME].source}' and '{provider_name}'",
                    "give every module a unique NAME",
                    cls.NAME,
                )
            )
        seen.add(cls.NAME)
    for found in extras:
        # Not a node at all: its name is taken by a non-module provider (e.g. "cache").
        if found.cls.NAME not in nodes or nodes[found.cls.NAME].cls is not found.cls:
            findings.append(
                Finding(
                    codes.DUPLICATE_NAME,
                    f"extra module {found.source} reuses the name '{found.cls.NAME}'",
                    "give every module a unique NAME",
                    found.cls.NAME,
                )
            )
    return findings


def check_not_wired(nodes: dict[str, ModuleNode], scanned: Sequence[FoundModule]) -> list[Finding]:
    """Module classes found in the package that no provider builds."""
    wired_classes = {node.cls for node in nodes.values()}
    return [
        Finding(
            codes.NOT_WIRED,
            f"module class {found.cls.__name__} in {found.source} is not wired",
            "add a provider for it to containers.py or list it in CREDIT_MODULES_EXTRA",
            found.cls.NAME,
        )
        for found in scanned
        if found.cls not in wired_classes and found.cls.NAME not in nodes
    ]


def check_dependencies(nodes: dict[str, ModuleNode]) -> list[Finding]:
    """DEPENDENCIES that name no module, or disagree with what the provider injects."""
    findings = []
    for name, node in sorted(nodes.items()):
        for dep in node.declared:
            if dep not in nodes:
                findings.append(
                    Finding(codes.UNKNOWN_DEPENDENCY, f"depends on unknown module '{dep}'", _suggest(dep, nodes), name)
                )
        for dep in sorted(set(node.actual) - set(node.declared)):
            findings.append(
                Finding(
                    codes.UNDECLARED_DEPENDENCY,
                    f"receives module '{dep}' but does not declare it in DEPENDENCIES",
                    f"add '{dep}' to {node.cls.__name__}.DEPENDENCIES",
                    name,
                )
            )
        for dep in sorted(set(node.declared) - set(node.actual)):
            if dep in nodes:
                findings.append(
                    Finding(
                        codes.UNUSED_DEPENDENCY,
                        f"declares '{dep}' but its provider does not receive it",
                        f"inject '{dep}' through the provider or drop it from DEPENDENCIES",
                        name,
                    )
                )
    return findings


def check_cycles(container, nodes: dict[str, ModuleNode], graph: dict[str, tuple[str, ...]]) -> list[Finding]:
    """Every cycle among modules, and a loop among the other providers."""
    findings = [
        # Edges point from a module to what it needs; print in the direction of use.
        Finding(
            codes.CYCLE,
            "dependency cycle: " + " -> ".join(cycle),
            "break the cycle: move the shared part into a service or an event",
            cycle[0],
        )
        for cycle in elementary_cycles(graph)
    ]
    service_loop = _provider_cycle(container, _module_ids(nodes))
    if service_loop:
        findings.append(
            Finding(
                codes.CYCLE,
                "provider cycle: " + " -> ".join(service_loop),
                "a provider depends on itself through others; break the loop in containers.py",
            )
        )
    return findings


def check_disabled(
    nodes: dict[str, ModuleNode], graph: dict[str, tuple[str, ...]], disabled: set[str]
) -> list[Finding]:
    """CREDIT_MODULES_DISABLED naming no module, or a module others still need."""
    findings = [
        Finding(codes.UNKNOWN_DISABLED, f"CREDIT_MODULES_DISABLED names unknown module '{name}'", _suggest(name, nodes))
        for name in sorted(disabled - set(nodes))
    ]
    for name in sorted(disabled & set(nodes)):
        needed_by = sorted(n for n, deps in graph.items() if name in deps and n not in disabled)
        if needed_by:
            findings.append(
                Finding(
                    codes.DISABLED_BUT_NEEDED,
                    f"disabled module '{name}' is needed by {', '.join(needed_by)}",
                    "those modules will be skipped; disable them too or enable this one",
                    name,
                )
            )
    return findings


def known_event_types(nodes: dict[str, ModuleNode]) -> set[str]:
    """The core's event types and every planned module's EMITS."""
    known = set(EVENT_DESCRIPTIONS)
    for node in nodes.values():
        known.update(getattr(node.cls, "EMITS", {}) or {})
    return known


def check_event_types(nodes: dict[str, ModuleNode]) -> list[Finding]:
    """EVENT_TYPES naming a type (or prefix) nothing emits; EVENT_TYPES without handle_event."""
    known = known_event_types(nodes)
    prefixes = {event_type.split(".", 1)[0] + "." for event_type in known}
    findings = []
    for name, node in sorted(nodes.items()):
        patterns = tuple(getattr(node.cls, "EVENT_TYPES", ()) or ())
        if patterns and not handles_events(node.cls):
            findings.append(
                Finding(
                    codes.NO_EVENT_HANDLER,
                    f"declares EVENT_TYPES {list(patterns)} but does not implement handle_event",
                    f"add `def handle_event(self, uow, event)` (or `handle_events(self, uow, events)`) to "
                    f"{node.cls.__name__}, or drop EVENT_TYPES",
                    name,
                )
            )
        for pattern in patterns:
            if pattern == "*" or any(event_type_matches(pattern, event_type) for event_type in known):
                continue
            candidates = prefixes if pattern.endswith(".") else known
            close = difflib.get_close_matches(pattern, sorted(candidates), n=1, cutoff=0.6)
            findings.append(
                Finding(
                    codes.UNKNOWN_EVENT_TYPE,
                    f"EVENT_TYPES names unknown event type '{pattern}': no delivery will ever match it",
                    f"did you mean '{close[0]}'?" if close else "GET /events/types lists the known types",
                    name,
                )
            )
    return findings


def topological_order(graph: dict[str, tuple[str, ...]]) -> list[str]:
    """Dependencies first, ties broken by name; modules on a cycle are left out."""
    remaining = {name: set(deps) for name, deps in graph.items()}
    dependents: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in deps:
            dependents[dep].append(name)
    ready = [name for name, deps in remaining.items() if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for dependent in dependents[name]:
            remaining[dependent].discard(name)
            if not remaining[dependent]:
                heapq.heappush(ready, dependent)
    return order
