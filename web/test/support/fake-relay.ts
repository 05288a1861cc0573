// An in-memory stand-in for the relay's websocket API (docs/pairing.md, "The relay"), on
// 127.0.0.1 with a random port. Test-only: uses Node's http and the `ws` package.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { toBase64 } from '../../src/lnc/bytes.js';

interface Stream {
  queue: string[];
  reader?: WebSocket;
  writer?: WebSocket;
}

export class FakeRelay {
  readonly streams = new Map<string, Stream>();
  /** Every message sent through the relay, per stream (base64 of msg). */
  readonly log = new Map<string, string[]>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<WebSocket>();
  /** When set, messages to these streams are swallowed (the node "does not answer"). */
  readonly blackholed = new Set<string>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  /** @param onRequest answers plain HTTP requests (default: 404), e.g. to serve the page. */
  static async start(onRequest?: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeRelay> {
    const server = createServer(
      onRequest ??
        ((_req, res) => {
          res.statusCode = 404;
          res.end();
        }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const relay = new FakeRelay(server, `ws://127.0.0.1:${port}`);
    server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.searchParams.get('method') !== 'POST') return socket.destroy();
      const kind = url.pathname.endsWith('/hashmail/send')
        ? 'send'
        : url.pathname.endsWith('/hashmail/receive')
          ? 'receive'
          : undefined;
      if (!kind || !url.pathname.startsWith('/v1/lightning-node-connect/')) return socket.destroy();
      relay.wss.handleUpgrade(req, socket, head, (ws) => relay.accept(ws, kind));
    });
    return relay;
  }

  createStream(sid: Uint8Array): void {
    const id = toBase64(sid);
    if (!this.streams.has(id)) this.streams.set(id, { queue: [] });
  }

  deleteStream(sid: Uint8Array): void {
    const id = toBase64(sid);
    const s = this.streams.get(id);
    this.streams.delete(id);
    s?.reader?.close(1000, 'stream deleted');
    s?.writer?.close(1000, 'stream deleted');
  }

  /** Drops every connection (as a relay restart would). */
  dropAll(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  async stop(): Promise<void> {
    this.dropAll();
    await new Promise<void>((r) => this.wss.close(() => r()));
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private fail(ws: WebSocket, code: number, message: string): void {
    ws.send(JSON.stringify({ error: { code, message, details: [] } }));
    ws.close(1000);
  }

  private accept(ws: WebSocket, kind: 'send' | 'receive'): void {
    this.sockets.add(ws);
    let bound: { id: string; stream: Stream } | undefined;
    ws.on('close', () => {
      this.sockets.delete(ws);
      if (bound?.stream.reader === ws) delete bound.stream.reader;
      if (bound?.stream.writer === ws) delete bound.stream.writer;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.fail(ws, 3, 'binary frames are not supported');
      let frame: { stream_id?: string; desc?: { stream_id?: string }; msg?: string };
      try {
        frame = JSON.parse(data.toString());
      } catch {
        return this.fail(ws, 3, 'invalid JSON');
      }
      if (kind === 'receive') {
        if (bound) return this.fail(ws, 3, 'unexpected message on receive stream');
        const id = frame.stream_id ?? '';
        const stream = this.streams.get(id);
        if (!stream) return this.fail(ws, 5, 'stream not found');
        if (stream.reader) return this.fail(ws, 9, 'read stream occupied');
        stream.reader = ws;
        bound = { id, stream };
        for (const m of stream.queue.splice(0)) this.deliver(id, stream, m);
        return;
      }
      const id = frame.desc?.stream_id ?? '';
      const stream = this.streams.get(id);
      if (!stream) return this.fail(ws, 5, 'stream not found');
      if (stream.writer && stream.writer !== ws) return this.fail(ws, 9, 'write stream occupied');
      stream.writer = ws;
      bound = { id, stream };
      const msg = frame.msg ?? '';
      if (!this.log.has(id)) this.log.set(id, []);
      this.log.get(id)!.push(msg);
      if (this.blackholed.has(id)) return;
      if (stream.reader) this.deliver(id, stream, msg);
      else stream.queue.push(msg);
    });
  }

  private deliver(id: string, stream: Stream, msg: string): void {
    stream.reader!.send(JSON.stringify({ result: { desc: { stream_id: id }, msg } }));
  }
}
