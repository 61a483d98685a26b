// Type declarations for herald.js: the Herald client, wire protocol v1.

/** Where a client is in its lifecycle. */
export type State = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** The first frame of every connection. */
export interface Welcome {
  type: 'welcome';
  protocol: number;
  connectionId: string;
  sessionId: string;
  correlationId: string;
  userId: string;
  heartbeatMs: number;
  resumed: boolean;
}

/** An event delivered to a room the client is in. */
export interface Message<T = unknown> {
  room: string;
  event: string;
  data: T;
  msgId: string;
  /** Publish time, Unix milliseconds. */
  ts: number;
  /** The publishing user's id, set by the server (absent for server-side publishes). */
  from?: string;
  /** Set when the message was published with ack (the client acknowledges it). */
  ack?: true;
  /** The message's place in the room's history, in rooms that keep one. */
  offset?: number;
  epoch?: string;
}

/** A room's position in its history: the last event received. */
export interface Position {
  offset: number;
  epoch: string;
  /** The msgId of the message at offset ('' when unknown): the server checks it on recovery. */
  msgId: string;
}

/** What onState is told with each change. */
export interface StateInfo {
  /** Backoff attempt of the next reconnect (connecting, reconnecting). */
  attempt?: number;
  /** Delay before the next attempt (reconnecting). */
  delayMs?: number;
  /** Close code of the connection that ended (reconnecting, closed). */
  closeCode?: number;
  reason?: string;
  /** The retryAfterMs of a server_shutdown that ended the connection. */
  retryAfterMs?: number;
  /** Why the client stopped (closed) or why an attempt failed. */
  error?: Error;
  /** The welcome frame (connected). */
  welcome?: Welcome;
}

/** The WebSocket constructor the client uses: the browser's, or ws's in Node. */
export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

/** The part of the WHATWG WebSocket API the client relies on. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: { data: any }) => any) | null;
  onclose: ((ev: { code: number; reason: string }) => any) | null;
  onerror: ((ev: any) => any) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface HeraldClientOptions {
  /**
   * The bearer token, or a function returning it. A function is called
   * before every connection attempt, so an expiring token is refreshed. Sent
   * as the query parameter tokenParam (browsers cannot set headers).
   */
  token?: string | (() => string | Promise<string>);
  /** Query parameter that carries the token. Default "token". */
  tokenParam?: string;
  /** Extra query parameters, e.g. { clientId: 'ada' } in anonymous mode. */
  params?: Record<string, string | number | boolean>;
  /** WebSocket subprotocols. */
  protocols?: string | string[];
  /** WebSocket constructor. Default globalThis.WebSocket; pass ws's in Node 20. */
  WebSocket?: WebSocketConstructor;
  /**
   * Reconnect backoff in ms: attempt n waits a random time in
   * [0, min·2ⁿ] capped at max (full jitter). Default {min: 500, max: 30000}.
   */
  reconnect?: { min?: number; max?: number };
  /** Send pending acks at least this often, in ms. Default 500. */
  ackInterval?: number;
  /** Send pending acks as soon as this many are pending (≤ 1024). Default 64. */
  ackMax?: number;
  /** A request's reply deadline in ms, waiting for a connection included. Default 10000. */
  requestTimeout?: number;
  /** How many recent msgIds are remembered to drop redeliveries. Default 4096. */
  dedupSize?: number;
  /**
   * Called with every state change, and again (state "reconnecting") with
   * each failed attempt and the delay before the next one.
   */
  onState?: (state: State, info: StateInfo) => void;
  /**
   * Called with errors no promise carries: an error frame without id, a
   * room that could not be joined again after a reconnect (err.room), a
   * handler that threw. Default console.error.
   */
  onError?: (err: Error) => void;
  /**
   * Called after each reconnect for every room that keeps history, once
   * the server replayed what the client missed: recovered false means it
   * could not give everything back (trimmed, expired, or history lost);
   * fetch the room's state again.
   */
  onRecovery?: (room: string, recovered: boolean) => void;
  /**
   * Called when the server says the client may have missed messages of
   * room that history cannot give back; fetch the room's state again.
   * After a reconnect that resumed the session it names each room the
   * server joined again without a replay, and the user room.
   */
  onGap?: (room: string) => void;
}

/** Server error codes (docs/protocol.md) and the client's own. */
export type ErrorCode =
  | 'bad_message'
  | 'unknown_type'
  | 'bad_request'
  | 'binary_unsupported'
  | 'forbidden'
  | 'not_joined'
  | 'too_many_rooms'
  | 'no_handler'
  | 'event_failed'
  | 'rate_limited'
  | 'broker_unavailable'
  | 'publish_timeout'
  | 'overloaded'
  | 'token_invalid'
  | 'backend_unavailable'
  | 'backend_timeout'
  | 'internal'
  | 'timeout'
  | 'disconnected'
  | 'closed'
  | 'connect_failed'
  | 'refused'
  | (string & {});

export class HeraldError extends Error {
  readonly name: 'HeraldError';
  readonly code: ErrorCode;
  /** Close code, for connect_failed and closed-by-server errors. */
  readonly closeCode?: number;
  readonly reason?: string;
  /** HTTP status, for a reconnect the server refused for good (code refused). */
  readonly status?: number;
  /** The room, for a re-join that failed after a reconnect. */
  room?: string;
  constructor(code: ErrorCode, message: string, extra?: object);
}

/** Close codes after which the client does not reconnect: 1008, 4003, 4004. */
export const NO_RECONNECT_CODES: readonly number[];

export class HeraldClient {
  constructor(url: string, options?: HeraldClientOptions);
  readonly state: State;
  readonly welcome: Welcome | null;
  readonly rooms: string[];
  /** Resolves once connected; rejects (code connect_failed) if the first attempt fails. */
  connect(): Promise<Welcome>;
  join(room: string): Promise<{ room: string; offset?: number; epoch?: string; recovered?: boolean }>;
  /** The last position received in room, for rooms that keep history. */
  position(room: string): Position | undefined;
  leave(room: string): Promise<{ room: string }>;
  /** Resolves with the message's msgId. */
  publish(room: string, event: string, data?: unknown, options?: { ack?: boolean; idempotencyKey?: string }): Promise<string>;
  /** Resolves with the server hook's reply; rejects with HeraldError (e.g. code no_handler). */
  emit<R = unknown>(event: string, data?: unknown): Promise<R>;
  on<T = unknown>(event: string, fn: (data: T, message: Message<T>) => void): () => void;
  off(event: string, fn: (data: any, message: Message) => void): void;
  onAny(fn: (message: Message) => void): () => void;
  close(): Promise<void>;
}
