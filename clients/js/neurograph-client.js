// neurograph-client.js: a client of the neurograph streaming server (/ws, DESIGN §9).
//
// An ES module without a build step or dependencies, for browsers and Node (the standard WebSocket
// class: global from Node 22, behind `node --experimental-websocket` on Node 20).
//
//   import { NeurographClient } from "./neurograph-client.js";
//   const client = new NeurographClient("ws://127.0.0.1:8000/ws", { token: "..." });
//   await client.connect();
//   await client.subscribe("signals", (event) => console.log(event.event_type, event.data));
//   const { result } = await client.emit({ event_type: "signal.input.external.text.chat", vector: [...] });
//
// Reconnection: when the socket drops (not closed by `close()`), the client reconnects with back-off
// (250 ms doubling to 10 s, with jitter) and resumes through its reconnection token: the server restores
// its subscriptions and replays the events it missed (after the last event id it saw). When the token
// has expired the client subscribes again itself. Callbacks survive reconnections.

/**
 * @typedef {Object} ChannelEvent
 * @property {number} id            the server's event id (increasing per server)
 * @property {string} channel       metrics | signals | actions | logs | status | connections
 * @property {string} event_type    e.g. "signal.input.external.text.chat"
 * @property {number} timestamp     seconds since the epoch
 * @property {Object} data          the event's data
 */

/**
 * @typedef {Object} ClientOptions
 * @property {string} [token]                 an API key or a JWT (sent as the `token` query parameter)
 * @property {boolean} [reconnect=true]       reconnect by itself after a drop
 * @property {number} [initialDelayMs=250]    first back-off delay
 * @property {number} [maxDelayMs=10000]      largest back-off delay
 * @property {number} [requestTimeoutMs=15000] how long a request waits for its reply
 * @property {typeof WebSocket} [WebSocket]   the WebSocket class (globalThis.WebSocket by default)
 * @property {(status: string, detail?: any) => void} [onStatus] "connected" | "reconnected" |
 *     "disconnected" | "reconnecting" | "closed"
 */

export const CHANNELS = ["metrics", "signals", "actions", "logs", "status", "connections"];

/** An error the server answered with (`error {message, retry_after?}`). */
export class NeurographError extends Error {
  /** @param {string} message @param {number|undefined} retryAfter */
  constructor(message, retryAfter) {
    super(message);
    this.name = "NeurographError";
    /** seconds to wait before retrying (rate limits), when the server said */
    this.retryAfter = retryAfter;
  }
}

export class NeurographClient {
  /**
   * @param {string} url the server's /ws URL, e.g. "ws://127.0.0.1:8000/ws"
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = {
      reconnect: true,
      initialDelayMs: 250,
      maxDelayMs: 10000,
      requestTimeoutMs: 15000,
      ...options,
    };
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== "function") {
      throw new Error("no WebSocket class: use Node >= 22, `node --experimental-websocket`, or pass one");
    }
    /** @type {Map<string, Set<(e: ChannelEvent) => void>>} */
    this.callbacks = new Map();
    /** @type {Map<number, {resolve: Function, reject: Function, timer: any}>} */
    this.pending = new Map();
    this.nextId = 1;
    this.lastEventId = null;
    this.reconnectionToken = null;
    this.clientId = null;
    this.role = null;
    this.reconnections = 0;
    this.closedByUser = false;
    this.ws = null;
    this._ready = null;
  }

  /** Open the socket; resolves with the server's `connected` message. */
  connect() {
    this.closedByUser = false;
    return this._open(false);
  }

  _open(resuming) {
    const params = new URLSearchParams();
    if (this.options.token) params.set("token", this.options.token);
    if (resuming && this.reconnectionToken) {
      params.set("reconnection_token", this.reconnectionToken);
      if (this.lastEventId !== null) params.set("last_event_id", String(this.lastEventId));
    }
    const query = params.toString();
    const url = query ? `${this.url}${this.url.includes("?") ? "&" : "?"}${query}` : this.url;
    const ws = new this.WebSocket(url);
    this.ws = ws;
    this._ready = new Promise((resolve, reject) => {
      let opened = false;
      ws.onmessage = (frame) => {
        let msg;
        try {
          msg = JSON.parse(typeof frame.data === "string" ? frame.data : new TextDecoder().decode(frame.data));
        } catch (err) {
          return; // not JSON: ignore (this client asks for JSON frames)
        }
        if (msg.type === "connected") {
          opened = true;
          this.clientId = msg.client_id;
          this.role = msg.role;
          resolve(msg);
          this._afterConnect(msg, resuming);
          return;
        }
        this._dispatch(msg);
      };
      ws.onclose = (ev) => {
        this._failPending(new Error(`socket closed (${ev.code}${ev.reason ? ": " + ev.reason : ""})`));
        if (!opened) {
          reject(new NeurographError(`connection refused (${ev.code}${ev.reason ? ": " + ev.reason : ""})`));
          if (ev.code === 1008) return; // bad credentials: retrying will not help
        }
        if (ws !== this.ws) return; // an older socket
        this._status("disconnected", { code: ev.code, reason: ev.reason });
        if (!this.closedByUser && this.options.reconnect && (opened || resuming)) this._reconnect();
      };
      ws.onerror = () => {}; // onclose follows with the code
    });
    return this._ready;
  }

  async _afterConnect(msg, resuming) {
    const channels = [...this.callbacks.keys()];
    if (resuming && !msg.reconnected && channels.length) {
      // the token expired or was unknown: subscribe again ourselves
      try {
        await this._request({ type: "subscribe", channels });
      } catch (err) {
        /* the next reconnection tries again */
      }
    }
    this._status(resuming ? "reconnected" : "connected", msg);
    try {
      await this._refreshToken();
    } catch (err) {
      /* not fatal: a later subscribe refreshes it */
    }
  }

  async _reconnect() {
    let delay = this.options.initialDelayMs;
    while (!this.closedByUser) {
      this._status("reconnecting", { delayMs: delay });
      await new Promise((r) => setTimeout(r, delay * (0.8 + 0.4 * Math.random())));
      if (this.closedByUser) return;
      try {
        await this._open(true);
        this.reconnections += 1;
        return;
      } catch (err) {
        if (err instanceof NeurographError && /1008/.test(err.message)) return;
        delay = Math.min(delay * 2, this.options.maxDelayMs);
      }
    }
  }

  async _refreshToken() {
    const reply = await this._request({ type: "get_reconnection_token" });
    this.reconnectionToken = reply.token;
    return reply;
  }

  _dispatch(msg) {
    if (msg.type === "event") {
      this._deliver(msg);
      return;
    }
    if (msg.type === "events") {
      for (const ev of msg.events) this._deliver(ev);
      return;
    }
    const waiter = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
    if (!waiter) return;
    this.pending.delete(msg.id);
    clearTimeout(waiter.timer);
    if (msg.type === "error") waiter.reject(new NeurographError(msg.message, msg.retry_after));
    else waiter.resolve(msg);
  }

  _deliver(ev) {
    if (typeof ev.id === "number") {
      if (this.lastEventId !== null && ev.id <= this.lastEventId) return; // a replayed duplicate
      this.lastEventId = ev.id;
    }
    for (const cb of this.callbacks.get(ev.channel) ?? []) {
      try {
        cb(ev);
      } catch (err) {
        console.error("neurograph-client: a subscriber callback failed:", err);
      }
    }
  }

  _request(message) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return Promise.reject(new Error("not connected"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${message.type} within ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...message, id }));
    });
  }

  _failPending(err) {
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
      this.pending.delete(id);
    }
  }

  _status(status, detail) {
    if (this.options.onStatus) this.options.onStatus(status, detail);
  }

  /**
   * Subscribe `callback` to one channel or several; resolves with `subscribed {channels, denied}`.
   * @param {string|string[]} channels
   * @param {(e: ChannelEvent) => void} callback
   */
  async subscribe(channels, callback) {
    const list = Array.isArray(channels) ? channels : [channels];
    const reply = await this._request({ type: "subscribe", channels: list });
    for (const ch of reply.channels) {
      if (!this.callbacks.has(ch)) this.callbacks.set(ch, new Set());
      this.callbacks.get(ch).add(callback);
    }
    await this._refreshToken();
    return reply;
  }

  /** Unsubscribe from channels (all when none are given). */
  async unsubscribe(channels) {
    const list = channels === undefined ? undefined : Array.isArray(channels) ? channels : [channels];
    const reply = await this._request(list ? { type: "unsubscribe", channels: list } : { type: "unsubscribe" });
    for (const ch of reply.channels ?? []) this.callbacks.delete(ch);
    if (!list) this.callbacks.clear();
    await this._refreshToken();
    return reply;
  }

  /**
   * Emit one signal (`vector`) or a batch (`vectors`); resolves with `emitted {result}` / `{results}`.
   * @param {{event_type: string, vector?: number[], vectors?: number[][], priority?: number,
   *          label?: string, payload?: any, labels?: (string|null)[], payloads?: any[]}} signal
   */
  emit(signal) {
    return this._request({ type: "emit", ...signal });
  }

  /** Round trip to the server; resolves with `pong`. */
  ping() {
    return this._request({ type: "ping" });
  }

  /** The channels the server has this client subscribed to. */
  subscriptions() {
    return this._request({ type: "get_subscriptions" });
  }

  /** Close for good (no reconnection). */
  close() {
    this.closedByUser = true;
    this._failPending(new Error("closed"));
    if (this.ws) this.ws.close(1000, "closed by the client");
    this._status("closed");
  }
}
