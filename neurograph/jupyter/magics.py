"""``%neurograph`` and ``%%signal``: the engine from notebook cells.

``%load_ext neurograph.jupyter`` registers them, and HTML renderers (:mod:`neurograph.display`) for the
result objects. One line magic with subcommands, each parsed by ``IPython.core.magic_arguments``::

    %neurograph init [--path P] [--device D] [--profile NAME] [--seed N] [--name eng]
    %neurograph status
    %neurograph query "find all nodes where type = 'concept' limit 10"
    %neurograph emit <event_type> <8 numbers | "text"> [--priority N] [--label L]
    %neurograph step <n>
    %neurograph hierarchy
    %neurograph subscribe <pattern> [--filter JSON] [--cap N]
    %neurograph unsubscribe <id | all>
    %neurograph cdna [--profile NAME | --set key=value ...]

    %%signal <pattern> [--filter JSON]
    print(event.event_type, event.data["token_id"])

The engine is the one ``init`` made, else an :class:`~neurograph.Engine` bound to ``eng`` in the user
namespace. ``emit`` with one quoted text encodes it with the gateway's text encoder (the
``builtin.text_chat`` sensor of :class:`~neurograph.gateway.Gateway`, as
:class:`~neurograph.SignalPipeline` does) and emits it under the given event type with the text as its
``payload`` (the token remembers it: ``eng.token(id)["payload"]``, the ``text`` column); ``--label``
labels the signal. ``query`` shows a styled table and keeps the DataFrame as ``_``. ``subscribe`` shows the
events live in the cell's output (:class:`~neurograph.jupyter.live.EventLog`); ``%%signal`` runs the
cell for each event (:class:`~neurograph.jupyter.live.CellHandler`). Every mistake is a ``UsageError``
that ends with the subcommand's usage line.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import HTML, display

from neurograph import display as render
from neurograph.engine import Engine
from neurograph.errors import NeurographError
from neurograph.jupyter.live import CellHandler, EventLog, LoopCaller

__all__ = ["NeurographMagics", "usage"]


def usage(command: Callable[..., Any]) -> str:
    """The one-line usage of a subcommand parser: ``usage: %neurograph emit ...``."""
    parser = command.parser  # type: ignore[attr-defined]
    formatter = parser._get_formatter()
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="usage: %")
    return " ".join(formatter.format_help().split())


# --- the subcommands' parsers (functions only carry the argparse spec) ------------------------------
@magic_arguments(name="neurograph init")
@argument("--path", default=None, help="a store directory (created, or continued if it holds a store)")
@argument("--device", default="cpu", help="cpu, cuda or cuda:N")
@argument("--profile", default=None, help="a CDNA profile: default, explorer, analyst, creative")
@argument("--seed", type=int, default=0, help="random seed")
@argument("--name", default="eng", help="the variable the engine is bound to")
def _init(line: str) -> None:
    """Make an engine and bind it in the user namespace."""


@magic_arguments(name="neurograph status")
def _status(line: str) -> None:
    """The engine's counters and sizes."""


@magic_arguments(name="neurograph query")
@argument("text", nargs="+", help="the query (quote it)")
def _query(line: str) -> None:
    """Run a query; the DataFrame is kept as _."""


@magic_arguments(name="neurograph emit")
@argument("event_type", help="e.g. signal.input.external.text.chat")
@argument("values", nargs="+", help='8 numbers, or one quoted "text"')
@argument("--priority", type=int, default=128, help="0..255")
@argument("--label", default=None, help="the signal's label (a category, a user-level type)")
def _emit(line: str) -> None:
    """Emit one signal."""


@magic_arguments(name="neurograph step")
@argument("n", type=int, help="dynamics steps")
def _step(line: str) -> None:
    """Run n dynamics steps."""


@magic_arguments(name="neurograph hierarchy")
def _hierarchy(line: str) -> None:
    """Rebuild and show the hierarchy of fields."""


@magic_arguments(name="neurograph subscribe")
@argument("pattern", help="an event type or pattern: signal.input.*, *")
@argument("--filter", default=None, help="a JSON filter dict, ANDed with the pattern")
@argument("--cap", type=int, default=20, help="events kept on screen")
def _subscribe(line: str) -> None:
    """Show matching events live in this cell's output."""


@magic_arguments(name="neurograph unsubscribe")
@argument("id", help="a subscription id, or all")
def _unsubscribe(line: str) -> None:
    """Stop a subscription or a %%signal handler."""


@magic_arguments(name="neurograph cdna")
@argument("--profile", default=None, help="switch to a profile")
@argument("--set", dest="changes", action="append", default=None, metavar="KEY=VALUE", help="change a field")
def _cdna(line: str) -> None:
    """Show or change the constitution."""


@magic_arguments(name="%signal")
@argument("pattern", help="an event type or pattern")
@argument("--filter", default=None, help="a JSON filter dict, ANDed with the pattern")
def _signal(line: str) -> None:
    """Run the cell's code for each matching event, with `event` bound."""


_COMMANDS: dict[str, Callable[..., Any]] = {
    "init": _init,
    "status": _status,
    "query": _query,
    "emit": _emit,
    "step": _step,
    "hierarchy": _hierarchy,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "cdna": _cdna,
}
_MAIN_USAGE = "usage: %neurograph {" + ",".join(_COMMANDS) + "} ..."


def _parse(command: Callable[..., Any], line: str) -> Any:
    """Parse a subcommand's arguments; strings lose their outer quotes (IPython splits like a shell
    but keeps them)."""
    try:
        args = parse_argstring(command, line)
    except UsageError as exc:
        raise UsageError(f"{exc}\n{usage(command)}") from None
    except ValueError as exc:  # unbalanced quotes (shlex)
        raise UsageError(f"{exc}\n{usage(command)}") from None
    for key, value in vars(args).items():
        if isinstance(value, str):
            setattr(args, key, _unquote(value))
        elif isinstance(value, list):
            setattr(args, key, [_unquote(v) if isinstance(v, str) else v for v in value])
    return args


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _spec(pattern: str, filter_json: str | None, command: Callable[..., Any]) -> Any:
    """A bus spec: the pattern alone, or the pattern ANDed with a JSON filter dict."""
    if filter_json is None:
        return pattern
    try:
        extra = json.loads(filter_json)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--filter is not JSON ({exc})\n{usage(command)}") from None
    if not isinstance(extra, dict):
        raise UsageError(f"--filter must be a JSON object, got {filter_json!r}\n{usage(command)}")
    if pattern == "*":
        return extra
    return {"$and": [{"event_type": {"$wildcard": pattern}}, extra]}


def _value(text: str) -> Any:
    """A ``--set`` value: a Python literal (numbers, lists, True), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@magics_class
class NeurographMagics(Magics):
    """The ``%neurograph`` line magic and the ``%%signal`` cell magic (module docstring).

    Attributes:
        engine: the engine the magics act on (``None`` until ``init`` or an ``eng`` in the namespace).
        subscriptions: live subscriptions by id (``subscribe`` and ``%%signal``).
    """

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.engine: Engine | None = None
        self.subscriptions: dict[int, Any] = {}
        self.logs: dict[int, EventLog | CellHandler] = {}
        self._gateway: Any = None

    # --- the engine -------------------------------------------------------------------------------
    def _engine(self, command: Callable[..., Any]) -> Engine:
        if self.engine is not None:
            return self.engine
        found = self.shell.user_ns.get("eng") if self.shell is not None else None
        if isinstance(found, Engine):
            return found
        raise UsageError(f"no engine: run %neurograph init first\n{usage(command)}")

    def _run(self, command: Callable[..., Any], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the engine; its typed errors become UsageErrors with the usage line."""
        try:
            return fn(*args, **kwargs)
        except (NeurographError, ValueError, TypeError) as exc:
            raise UsageError(f"{type(exc).__name__}: {exc}\n{usage(command)}") from None

    # --- %neurograph --------------------------------------------------------------------------------
    @line_magic("neurograph")
    def neurograph(self, line: str) -> Any:
        """``%neurograph <command> ...``: init, status, query, emit, step, hierarchy, subscribe,
        unsubscribe, cdna (``%neurograph <command> --help`` is not needed: a mistake prints the usage)."""
        head, _, rest = line.strip().partition(" ")
        command = _COMMANDS.get(head)
        if command is None:
            what = f"unknown command {head!r}" if head else "a command is needed"
            raise UsageError(f"{what}\n{_MAIN_USAGE}")
        args = _parse(command, rest)
        return getattr(self, f"_do_{head}")(command, args)

    def _do_init(self, command: Callable[..., Any], args: Any) -> Engine:
        if not args.name.isidentifier():
            raise UsageError(f"--name must be a Python identifier, got {args.name!r}\n{usage(command)}")
        eng = self._run(
            command, Engine, device=args.device, cdna=args.profile, seed=args.seed, path=args.path
        )
        self.engine = eng
        self.shell.push({args.name: eng})
        return eng

    def _do_status(self, command: Callable[..., Any], args: Any) -> render.Status:
        eng = self._engine(command)
        return render.Status(eng.stats(), repr(eng))

    def _do_query(self, command: Callable[..., Any], args: Any) -> None:
        eng = self._engine(command)
        text = " ".join(args.text)
        frame = self._run(command, eng.query, text)
        display(HTML(render.frame_html(frame, f"{text}: {len(frame)} rows")))
        self.shell.user_ns["_"] = frame

    def _do_emit(self, command: Callable[..., Any], args: Any) -> Any:
        eng = self._engine(command)
        meta: dict[str, Any] = {}
        if len(args.values) == 8:
            try:
                vector = [float(v) for v in args.values]
            except ValueError:
                raise UsageError(f"expected 8 numbers, got {args.values}\n{usage(command)}") from None
        elif len(args.values) == 1:
            text = args.values[0]
            vector = self._run(command, self._text_vector, text)
            meta["payload"] = text
        else:
            raise UsageError(
                f'expected 8 numbers or one quoted "text", got {len(args.values)} values\n{usage(command)}'
            )
        if args.label is not None:
            meta["label"] = args.label
        return self._run(command, eng.emit, args.event_type, vector, args.priority, **meta)

    def _text_vector(self, text: str) -> Any:
        if self._gateway is None:
            from neurograph.gateway import Gateway

            self._gateway = Gateway()
        return self._gateway.push_text(text).vector

    def _do_step(self, command: Callable[..., Any], args: Any) -> Any:
        return self._run(command, self._engine(command).step, args.n)

    def _do_hierarchy(self, command: Callable[..., Any], args: Any) -> Any:
        return self._run(command, self._engine(command).hierarchy)

    def _do_subscribe(self, command: Callable[..., Any], args: Any) -> None:
        eng = self._engine(command)
        if args.cap < 1:
            raise UsageError(f"--cap must be >= 1, got {args.cap}\n{usage(command)}")
        log = EventLog("", cap=args.cap)
        sub = self._run(command, eng.subscribe, _spec(args.pattern, args.filter, command), log)
        log.title = f"subscription {sub.id}: {args.pattern}" + (f" {args.filter}" if args.filter else "")
        self.subscriptions[sub.id] = sub
        self.logs[sub.id] = log
        log.show()

    def _do_unsubscribe(self, command: Callable[..., Any], args: Any) -> None:
        if args.id == "all":
            ids = sorted(self.subscriptions)
        elif args.id.isdigit() and int(args.id) in self.subscriptions:
            ids = [int(args.id)]
        else:
            known = ", ".join(map(str, sorted(self.subscriptions))) or "none"
            raise UsageError(f"no subscription {args.id} (live: {known})\n{usage(command)}")
        for sub_id in ids:
            sub = self.subscriptions.pop(sub_id)
            sub.close()
            self.logs.pop(sub_id, None)
            print(f"subscription {sub_id} closed ({sub.delivered} events delivered)")

    def _do_cdna(self, command: Callable[..., Any], args: Any) -> Any:
        eng = self._engine(command)
        if args.profile is not None and args.changes:
            raise UsageError(f"--profile and --set exclude each other\n{usage(command)}")
        if args.profile is not None:
            return self._run(command, eng.set_cdna, args.profile)
        if args.changes:
            changes = {}
            for item in args.changes:
                key, eq, value = item.partition("=")
                if not eq or not key.strip():
                    raise UsageError(f"--set expects KEY=VALUE, got {item!r}\n{usage(command)}")
                changes[key.strip()] = _value(value.strip())
            return self._run(command, eng.update_cdna, **changes)
        return eng.cdna

    # --- %%signal -----------------------------------------------------------------------------------
    @cell_magic("signal")
    def signal(self, line: str, cell: str) -> None:
        """``%%signal <pattern> [--filter JSON]``: run the cell's code for each matching event, with
        ``event`` bound (a :class:`~neurograph.events.Event`); ``%neurograph unsubscribe <id>`` stops it."""
        args = _parse(_signal, line)
        eng = self._engine(_signal)
        try:
            handler = CellHandler(cell, self.shell.user_ns, "<%%signal>")
        except SyntaxError as exc:
            raise UsageError(f"the cell does not compile: {exc}\n{usage(_signal)}") from None
        handler.caller = LoopCaller(handler.print_report, 0.0)
        sub = self._run(_signal, eng.subscribe, _spec(args.pattern, args.filter, _signal), handler)
        handler.name = f"<%%signal {sub.id}>"
        handler.code = compile(cell, handler.name, "exec")  # tracebacks name the handler
        self.subscriptions[sub.id] = sub
        self.logs[sub.id] = handler
        print(f"handler {sub.id} runs on {args.pattern}" + (f" {args.filter}" if args.filter else ""))

    # --- after each cell ----------------------------------------------------------------------------
    def flush_pending(self) -> None:
        """Draw what is pending (the ``post_run_cell`` hook: shells without a running loop)."""
        for log in list(self.logs.values()):
            caller = log.caller
            if caller is not None:
                caller.flush_pending()

    def close(self) -> None:
        """Close every subscription (``%unload_ext``)."""
        for sub in self.subscriptions.values():
            sub.close()
        self.subscriptions.clear()
        self.logs.clear()
