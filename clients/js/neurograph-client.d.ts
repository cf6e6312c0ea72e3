// Types of neurograph-client.js (the client of the neurograph streaming server, DESIGN §9).

export type Channel = "metrics" | "signals" | "actions" | "logs" | "status" | "connections";
export declare const CHANNELS: Channel[];

export interface ChannelEvent {
  /** the server's event id (increasing) */
  id: number;
  channel: Channel;
  event_type: string;
  /** seconds since the epoch */
  timestamp: number;
  data: Record<string, unknown>;
}

export interface ConnectedMessage {
  type: "connected";
  client_id: string;
  user_id: string;
  role: "admin" | "developer" | "viewer" | "bot" | "anonymous";
  reconnected: boolean;
  channels: Channel[];
}

export interface ClientOptions {
  /** an API key or a JWT */
  token?: string;
  /** reconnect by itself after a drop (default true) */
  reconnect?: boolean;
  initialDelayMs?: number;
  maxDelayMs?: number;
  requestTimeoutMs?: number;
  WebSocket?: typeof WebSocket;
  onStatus?: (status: "connected" | "reconnected" | "disconnected" | "reconnecting" | "closed", detail?: unknown) => void;
}

export interface Signal {
  event_type: string;
  vector?: number[];
  vectors?: number[][];
  priority?: number;
  priorities?: number[];
  kind?: string;
  label?: string;
  labels?: (string | null)[];
  payload?: unknown;
  payloads?: unknown[];
}

export interface EmitResult {
  token_id: number;
  is_novel: boolean;
  neighbors: { token_id: number; distance: number; resonance: number }[];
  anomaly_score: number;
  resonance: number;
  [key: string]: unknown;
}

export declare class NeurographError extends Error {
  retryAfter?: number;
}

export declare class NeurographClient {
  constructor(url: string, options?: ClientOptions);
  readonly clientId: string | null;
  readonly role: string | null;
  readonly reconnections: number;
  lastEventId: number | null;
  connect(): Promise<ConnectedMessage>;
  subscribe(channels: Channel | Channel[], callback: (event: ChannelEvent) => void): Promise<{ type: "subscribed"; channels: Channel[]; denied: string[] }>;
  unsubscribe(channels?: Channel | Channel[]): Promise<{ type: "unsubscribed"; channels: Channel[] }>;
  emit(signal: Signal): Promise<{ type: "emitted"; result?: EmitResult; results?: Record<string, unknown> }>;
  ping(): Promise<{ type: "pong"; timestamp: number }>;
  subscriptions(): Promise<{ type: "subscriptions"; channels: Channel[] }>;
  close(): void;
}
