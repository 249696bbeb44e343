"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for CI.

It lets `.ci/run` drive the ReAct example through its real HTTP client: it checks every
request (path, bearer token, model, tools, the conversation so far) and answers like a model
solving "3+3*2+20*4" with the tools would. Anything unexpected gets a 400 whose body says
what was wrong, which fails the example's run.

When the request asks for `"stream": true`, the reply comes as server-sent events, as the
OpenAI API sends them: the text a word per chunk, each tool call as a chunk with its id and
name, then its arguments in two pieces, then `data: [DONE]`; with a pause between chunks, so
that the client really reads a stream.

Usage: python3 mock_openai.py PORT_FILE   (writes the port it listens on to PORT_FILE)
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

KEY = "ci-test-key"
MODEL = "ci-mock-model"


def call(call_id, name, a, b):
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"a": a, "b": b})},
    }


# (tool results the conversation must hold so far, the reply)
SCRIPT = [
    ({}, {"tool_calls": [call("c1", "multiply", 3, 2), call("c2", "multiply", 20, 4)]}),
    ({"c1": 6, "c2": 80}, {"tool_calls": [call("c3", "add", 3, 6)]}),
    ({"c1": 6, "c2": 80, "c3": 9}, {"tool_calls": [call("c4", "add", 9, 80)]}),
    ({"c1": 6, "c2": 80, "c3": 9, "c4": 89}, {"content": "3+3*2+20*4 = 89, said the mock"}),
]


def chunks(message):
    """The streamed form of a reply message: a list of chat.completion.chunk objects."""
    def chunk(delta, finish=None):
        return {"id": "mock", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    out = [chunk({"role": "assistant"})]
    text = message.get("content") or ""
    words = text.split(" ")
    for i, word in enumerate(words):
        out.append(chunk({"content": word + (" " if i + 1 < len(words) else "")}))
    for index, call_ in enumerate(message.get("tool_calls", [])):
        args = call_["function"]["arguments"]
        half = len(args) // 2
        out.append(chunk({"tool_calls": [{"index": index, "id": call_["id"], "type": "function",
                                          "function": {"name": call_["function"]["name"],
                                                       "arguments": ""}}]}))
        out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": args[:half]}}]}))
        out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": args[half:]}}]}))
    out.append(chunk({}, "tool_calls" if message.get("tool_calls") else "stop"))
    return out


def reply_to(request):
    if request.get("model") != MODEL:
        return f"model should be {MODEL!r}, got {request.get('model')!r}"
    names = sorted(t["function"]["name"] for t in request.get("tools", []))
    if names != ["add", "multiply"]:
        return f"tools should be add and multiply, got {names}"
    messages = request.get("messages", [])
    if not any(m.get("role") == "user" and "3+3*2+20*4" in (m.get("content") or "") for m in messages):
        return "the conversation has no user question about 3+3*2+20*4"
    results = {}
    for m in messages:
        if m.get("role") == "tool":
            try:
                results[m["tool_call_id"]] = float(m["content"])
            except (KeyError, ValueError):
                return f"bad tool message {m!r}"
    for expected, reply in SCRIPT:
        if results == expected:
            message = {"role": "assistant", "content": reply.get("content")}
            if "tool_calls" in reply:
                message["tool_calls"] = reply["tool_calls"]
            return {"id": "mock", "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    return f"unexpected tool results so far: {results}"


def request_streams(body):
    try:
        return json.loads(body).get("stream") is True
    except json.JSONDecodeError:
        return False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/chat/completions":
            answer = f"unexpected path {self.path}"
        elif self.headers.get("Authorization") != f"Bearer {KEY}":
            answer = "missing or wrong bearer token"
        else:
            try:
                answer = reply_to(json.loads(body))
            except json.JSONDecodeError as error:
                answer = f"the body is not JSON: {error}"
        status = 200 if isinstance(answer, dict) else 400
        if status == 200 and request_streams(body):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in chunks(answer["choices"][0]["message"]):
                self.wfile.write(f"data: {json.dumps(piece)}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.01)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            return
        data = json.dumps(answer if status == 200 else {"error": {"message": answer}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as port_file:
        port_file.write(str(server.server_address[1]))
    server.timeout = 1
    # Serve for at most five minutes, then stop by itself.
    import time
    deadline = time.time() + 300
    while time.time() < deadline:
        server.handle_request()
