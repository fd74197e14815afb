"""An OpenVINO model compiled per input shape, with requests in flight for a video.

    run = ShapedModel(openvino_model, amp="none", threads=2)
    labels = run(image, "labels")                    # image: uint8 (1, H, W, 3) BGR; numpy out
    for tag, labels in run.stream(tagged_images):    # (tag, image) in; two requests in flight, results in order
        ...

OpenVINO's CPU plugin pays heavily for dynamic shapes (docs/deploy.md, 'Real time on two CPU cores'). A video, a
camera and an evaluation at one size meet one shape again and again, so a shape met a second time is compiled for
itself and kept, the most recent SHAPES of them; a shape met once (a folder of photos of every size) runs on the
dynamic model, compiled at load, so that no photo waits for a compilation of its own. When shapes keep coming back
after being evicted (more sizes in turn than the cache holds, as multi-scale testing), compiling again costs more
than it saves: after MAX_EVICTIONS evictions new shapes stay dynamic.

Compiled for one shape, the graph gives the dynamic model's labels (tests/test_runtime.py; on the real CamVid
int8 model all of them, see compile()).
"""
import collections
import concurrent.futures
import threading

from utils.errors import UserError

SHAPES = 4          # compiled shapes kept (each holds its own activation buffers)
MAX_EVICTIONS = 4   # beyond this many evictions, new shapes run on the dynamic model
IN_FLIGHT = 2       # requests in flight in stream(): one per core of a 2-core CPU


def openvino_core():
    try:
        import openvino
    except ImportError:
        raise UserError("openvino is not installed; pip install -r requirements-dev.txt (it pins openvino and "
                        "nncf; running an .xml needs openvino only).") from None
    return openvino.Core()


def native_bf16():
    """Whether OpenVINO's CPU plugin computes bf16 natively here (avx512_bf16 or AMX): elsewhere it emulates or
    refuses it and bf16 is no faster."""
    return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class ShapedModel:
    """run(image, output name) -> that output as numpy, compiled per shape as the module docstring says.
    `threads`: the CPU threads the network may use (torch's count by default, as ONNX Runtime's sessions).
    Not for calls from several threads at once (one request per compiled model), as before."""

    def __init__(self, model, amp="none", threads=1, shapes=SHAPES):
        self.core = openvino_core()
        self.model, self.threads, self.shapes = model, threads, shapes
        self.hint = {"none": "f32", "bf16": "bf16"}[amp]
        dynamic = self.compile(model, "LATENCY")
        self.dynamic = dynamic, [dynamic.create_infer_request()]
        self.fixed = collections.OrderedDict()  # (shape, hint) -> (compiled model, its requests)
        self.met = collections.Counter()
        self.evictions = 0
        self.building = {}  # (shape, hint) -> Future of (compiled model, its requests)
        self.background = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="openvino-compile")
        self.lock = threading.Lock()

    @property
    def precision(self):
        """The precision the plugin computes in (an openvino.Type: f32, or bf16 where asked and native)."""
        return self.dynamic[0].get_property("INFERENCE_PRECISION_HINT")

    def compile(self, model, hint):
        """The precision is pinned: the CPU plugin otherwise computes in bf16 on CPUs that have it, silently;
        bf16 is asked for with --amp bf16, as autocast is for a .pth. Snippets (the plugin's fused subgraphs, made
        for fixed shapes only) are off: they round int8 otherwise, and the real CamVid int8 model compiled for
        one shape then changed some of the dynamic model's labels; without them it gives them exactly, and the
        fixed shape keeps most of its speed-up (docs/deploy.md, 'Real time on two CPU cores'). THROUGHPUT: one
        stream per request in flight, each on its share of the threads; LATENCY: one stream on all of them."""
        config = {"INFERENCE_PRECISION_HINT": self.hint, "PERFORMANCE_HINT": hint,
                  "INFERENCE_NUM_THREADS": self.threads, "SNIPPETS_MODE": "DISABLE"}
        if hint == "THROUGHPUT":
            config["NUM_STREAMS"] = max(1, min(IN_FLIGHT, self.threads))
        return self.core.compile_model(model, "CPU", config)

    def compiled(self, shape, hint="LATENCY"):
        """(compiled model, [its requests]) for an input shape: the fixed-shape compilation from the cache, a new
        one (for a LATENCY call: when the shape is met the second time), or the dynamic model. A stream's
        (THROUGHPUT) compilation is built in the background: its first frames go through the dynamic model
        meanwhile, so that a video does not wait for it (a compilation takes as long as many frames)."""
        key = (tuple(shape), hint)
        with self.lock:
            if key in self.building and self.building[key].done():
                self.keep(key, self.building.pop(key).result())
            if key in self.fixed:
                self.fixed.move_to_end(key)
                return self.fixed[key]
            if key in self.building:
                return self.dynamic
            self.met[key] += 1
            if (hint == "LATENCY" and self.met[key] < 2) or self.evictions >= MAX_EVICTIONS:
                return self.dynamic
            if hint == "THROUGHPUT":
                self.building[key] = self.background.submit(self.build, shape, hint)
                return self.dynamic
            self.keep(key, self.build(shape, hint))
            return self.fixed[key]

    def build(self, shape, hint):
        model = self.model.clone()
        model.reshape({model.input(0).get_any_name(): list(shape)})
        compiled = self.compile(model, hint)
        count = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") if hint == "THROUGHPUT" else 1
        return compiled, [compiled.create_infer_request() for _ in range(count)]

    def keep(self, key, entry):
        self.fixed[key] = entry
        if len(self.fixed) > self.shapes:
            self.fixed.popitem(last=False)
            self.evictions += 1

    def __call__(self, image, out):
        compiled, requests = self.compiled(image.shape)
        # The request reuses its output buffers: a copy, since a caller may keep an output past the next call.
        return requests[0].infer({0: image})[compiled.output(out)].copy()

    def stream(self, items, out="labels", profile=None):
        """(tag, output) for each (tag, image) of `items`, in their order, with one request in flight per stream
        of the THROUGHPUT compilation (IN_FLIGHT on two or more threads): while the network works on one frame,
        the next is already submitted, and the caller decodes, blends and writes meanwhile (the requests run
        outside the GIL). Inputs are copied when submitted, so the caller may reuse its arrays. `profile`
        (engine.profile.Profile) gets each request's own inference time as "network"."""
        pending = collections.deque()  # (tag, request, output port), oldest first
        try:
            for tag, image in items:
                compiled, requests = self.compiled(image.shape, "THROUGHPUT")
                busy = {id(r) for _, r, _ in pending}
                while all(id(r) in busy for r in requests):  # every request of this model in flight: the oldest
                    done = pending.popleft()                  # of all has to finish first, to keep the order
                    yield done[0], finish(done, profile)
                    busy = {id(r) for _, r, _ in pending}
                request = next(r for r in requests if id(r) not in busy)
                request.start_async({0: image})
                pending.append((tag, request, compiled.output(out)))
            while pending:
                done = pending.popleft()
                yield done[0], finish(done, profile)
        finally:
            for _, request, _ in pending:  # left early (an error, Ctrl-C): no request outlives the stream
                request.wait()


def finish(entry, profile=None):
    _, request, port = entry
    request.wait()
    if profile is not None:
        profile.add("network", request.latency / 1000)  # ms of this request's inference alone
    return request.get_tensor(port).data.copy()
