"""The module graph, read from the container's providers without calling any of them."""

from __future__ import annotations

import difflib
import heapq
import inspect
from dataclasses import dataclass, field

from dependency_injector import providers

from app.kernel import findings as codes
from app.kernel.discovery import FoundModule
from app.kernel.findings import Finding
from app.kernel.module import Module, is_module_class

MAX_CYCLES_REPORTED = 50


@dataclass
class ModuleNode:
    name: str
    provider: providers.Provider
    cls: type
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
    while provider.overridden:
        provider = provider.last_overriding
    return provider


def _edges(provider: providers.Provider) -> list[providers.Provider]:
    provider = effective(provider)
    if isinstance(provider, providers.Selector):
        try:  # reading the selector option calls no factory
            active = provider.providers.get(provider.selector())
        except Exception:
            active = None
        return [active] if active is not None else list(provider.providers.values())
    return [p for p in provider.related if isinstance(p, providers.Provider)]


def provided_module_class(provider: providers.Provider) -> type | None:
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
        for param in list(inspect.signature(found.cls.__init__).parameters.values())[1:]:
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
    container, disabled: tuple[str, ...] = (), scanned: list[FoundModule] = (), extras: list[FoundModule] = ()
) -> ModulePlan:
    """Read the module graph from the container and check it; nothing is called."""
    found_problems = wire_extra_modules(container, list(extras))
    findings: list[Finding] = list(found_problems)
    sources = {f.cls: f.source for f in list(scanned) + list(extras)}

    nodes: dict[str, ModuleNode] = {}
    module_ids: dict[int, str] = {}
    for provider_name, provider in container.providers.items():
        cls = provided_module_class(provider)
        if cls is None:
            continue
        name = cls.NAME
        if name in nodes:
            findings.append(
                Finding(
                    codes.DUPLICATE_NAME,
                    f"module name '{name}' is provided by both '{nodes[name].source}' and '{provider_name}'",
                    "give every module a unique NAME",
                    name,
                )
            )
            continue
        source = sources.get(cls) or f"containers.{provider_name}"
        nodes[name] = ModuleNode(name, provider, cls, source, tuple(getattr(cls, "DEPENDENCIES", ())))
        module_ids[id(provider)] = name
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

    wired_classes = {node.cls for node in nodes.values()}
    for found in scanned:
        if found.cls not in wired_classes and found.cls.NAME not in nodes:
            findings.append(
                Finding(
                    codes.NOT_WIRED,
                    f"module class {found.cls.__name__} in {found.source} is not wired",
                    "add a provider for it to containers.py or list it in CREDIT_MODULES_EXTRA",
                    found.cls.NAME,
                )
            )

    for name, node in sorted(nodes.items()):
        node.actual = _module_edges(node.provider, module_ids)
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

    graph = {name: tuple(d for d in node.dependencies if d in nodes) for name, node in nodes.items()}
    for cycle in elementary_cycles(graph):
        # Edges point from a module to what it needs; print in the direction of use.
        findings.append(
            Finding(
                codes.CYCLE,
                "dependency cycle: " + " -> ".join(cycle),
                "break the cycle: move the shared part into a service or an event",
                cycle[0],
            )
        )
    service_loop = _provider_cycle(container, module_ids)
    if service_loop:
        findings.append(
            Finding(
                codes.CYCLE,
                "provider cycle: " + " -> ".join(service_loop),
                "a provider depends on itself through others; break the loop in containers.py",
            )
        )

    disabled_set = set(disabled)
    for name in sorted(disabled_set - set(nodes)):
        findings.append(
            Finding(
                codes.UNKNOWN_DISABLED, f"CREDIT_MODULES_DISABLED names unknown module '{name}'", _suggest(name, nodes)
            )
        )
    for name in sorted(disabled_set & set(nodes)):
        needed_by = sorted(n for n, deps in graph.items() if name in deps and n not in disabled_set)
        if needed_by:
            findings.append(
                Finding(
                    codes.DISABLED_BUT_NEEDED,
                    f"disabled module '{name}' is needed by {', '.join(needed_by)}",
                    "those modules will be skipped; disable them too or enable this one",
                    name,
                )
            )

    return ModulePlan(nodes, topological_order(graph), disabled_set & set(nodes), findings)


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
