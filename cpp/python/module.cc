// rnnkit._native: the only C++ that touches Python. Each function re-checks dtypes, shapes and
// layout (raising ValueError naming the argument, so no input can crash the interpreter), allocates
// the outputs, releases the GIL and calls the core. rnnkit/_native_ops.py adapts these to the
// canonical signatures of docs/ARCHITECTURE.md.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <initializer_list>
#include <string>
#include <vector>

#include "rnnkit/dense.h"
#include "rnnkit/gemm.h"
#include "rnnkit/kernels.h"
#include "rnnkit/gru.h"
#include "rnnkit/lstm.h"
#include "rnnkit/settings.h"
#include "rnnkit/simple_rnn.h"
#include "rnnkit/threading.h"
#include "rnnkit/weight_pack.h"

namespace py = pybind11;
using rnnkit::index_t;

namespace {

std::string shape_str(const std::vector<index_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

// Checks that `obj` is a C-contiguous, aligned, native-order array of dtype T with `shape`
// (-1 = any) and returns it; None is allowed when `optional`.
template <class T>
py::object checked(const py::object& obj, const char* name, std::initializer_list<index_t> shape,
                   bool optional = false) {
  if (obj.is_none()) {
    if (optional) return py::none();
    throw py::value_error(std::string(name) + " is required, got None");
  }
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array");
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  static const py::handle expected = py::dtype::of<T>().release();  // kept for the process
  if (!arr.dtype().is(expected))
    throw py::value_error(std::string(name) + " must have dtype " + std::string(py::str(expected)) +
                          ", got " + std::string(py::str(arr.dtype())));
  const int flags = py::array::c_style;
  if (!(arr.flags() & flags) || !(arr.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(name) + " must be C-contiguous and aligned");
  // shape: -1 = any; compared in place (this runs for every array of every call)
  bool ok = static_cast<std::size_t>(arr.ndim()) == shape.size();
  for (std::size_t i = 0; ok && i < shape.size(); ++i) {
    const index_t want = shape.begin()[i];
    ok = want < 0 || arr.shape(i) == want;
  }
  if (!ok) {
    std::vector<index_t> want(shape), got(arr.shape(), arr.shape() + arr.ndim());
    if (want.size() == got.size())  // same rank: show the free dimensions as received
      for (std::size_t i = 0; i < want.size(); ++i)
        if (want[i] < 0) want[i] = got[i];
    throw py::value_error(std::string(name) + " must have shape " + shape_str(want) + ", got " +
                          shape_str(got));
  }
  return arr;
}

// An activation name; a NUL inside would make the C string a different, valid name ("tanh\0x").
rnnkit::Activation activation_of(const std::string& value, const char* name) {
  if (value.find('\0') != std::string::npos)
    throw py::value_error(std::string(name) + " must not contain NUL characters, got " +
                          std::string(py::repr(py::str(value))));
  return rnnkit::parse_activation(value.c_str());
}

// Optional arrays are py::object's holding None when absent (a default py::array is NOT empty).
template <class T> const T* cptr(const py::object& a) {
  return a.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(a).data());
}
template <class T> T* mptr(const py::object& a) {
  return a.is_none() ? nullptr : static_cast<T*>(py::reinterpret_borrow<py::array>(a).mutable_data());
}
const std::uint8_t* mask_ptr(const py::object& a) { return cptr<std::uint8_t>(a); }

py::object checked_mask(const py::object& obj, index_t B, index_t T) {
  if (obj.is_none()) return py::none();
  return checked<bool>(obj, "mask", {B, T});
}

// Result arrays. Large ones come from the core's cache of large blocks (rnnkit::large_alloc), so a
// training loop reuses the pages of the previous call's arrays instead of faulting in fresh ones;
// the capsule gives the block back when NumPy frees the array.
template <class T>
py::array_t<T> empty(std::vector<index_t> shape) {
  // Dimensions come from the arguments: a zero-size input may carry huge ones, so the element count
  // and byte size are computed with overflow checks (a wrapped size would allocate a small block).
  std::size_t n = 1;
  bool overflow = false;
  for (index_t d : shape) {
    if (d < 0) throw py::value_error("negative dimension in result shape " + shape_str(shape));
    overflow |= __builtin_mul_overflow(n, static_cast<std::size_t>(d), &n);
  }
  std::size_t bytes = 0;
  overflow |= __builtin_mul_overflow(n, sizeof(T), &bytes);
  if (overflow || bytes > static_cast<std::size_t>(PTRDIFF_MAX))
    throw py::value_error("result of shape " + shape_str(shape) + " is too large to allocate");
  if (bytes < (std::size_t(1) << 20)) return py::array_t<T>(shape);
  struct Block { void* p; std::size_t bytes; };
  Block* block = new Block{rnnkit::large_alloc(bytes), bytes};
  py::capsule owner(block, [](void* b) {
    Block* blk = static_cast<Block*>(b);
    rnnkit::large_free(blk->p, blk->bytes);
    delete blk;
  });
  return py::array_t<T>(shape, static_cast<T*>(block->p), owner);
}

bool is_f64_array(const py::object& o, const char* name) {
  if (!py::isinstance<py::array>(o)) throw py::type_error(std::string(name) + " must be a numpy array");
  py::dtype dt = py::reinterpret_borrow<py::array>(o).dtype();
  if (dt.is(py::dtype::of<double>())) return true;
  if (dt.is(py::dtype::of<float>())) return false;
  throw py::value_error(std::string(name) + " must have dtype float32 or float64, got " +
                        std::string(py::str(dt)));
}

// Calls f(float{}) or f(double{}) by the dtype of `decider` (the weights decide; every other array
// must then match, which the checked<T> calls enforce).
template <class F>
auto by_dtype(const py::object& decider, const char* name, F&& f) {
  return is_f64_array(decider, name) ? f(double{}) : f(float{});
}

// kernel (I, G·H) -> H, checking that the width is a whole number of gate blocks.
index_t units_of(const py::array& kernel, index_t gates) {
  const index_t width = kernel.shape(1);
  if (width % gates != 0 || width == 0)
    throw py::value_error("kernel must have shape (input_dim, " + std::to_string(gates) +
                          " * units), got " + shape_str({kernel.shape(0), width}));
  return width / gates;
}

// ---- WeightPack: a layer's kernel and recurrent_kernel packed once for its inference calls ------
// Holds the two arrays (so they outlive the pack) and insists that they are read-only: the pack
// reads them only when it makes a layout, so writing into them afterwards would leave it stale.
struct PyWeightPack {
  py::array kernel, recurrent_kernel;
  index_t gates = 1;
  // what the core pack points to: a kernel resized in place (ndarray.resize(refcheck=False)) would
  // leave it reading freed memory, so every use checks these are unchanged
  const void* kernel_data = nullptr;
  const void* recurrent_kernel_data = nullptr;
  std::vector<index_t> kernel_shape, recurrent_kernel_shape;
  std::shared_ptr<rnnkit::WeightPack<float>> f32;
  std::shared_ptr<rnnkit::WeightPack<double>> f64;

  template <class T> const rnnkit::WeightPack<T>* get() const {
    if constexpr (std::is_same_v<T, float>) return f32.get(); else return f64.get();
  }
};

// The PyWeightPack inside a Python WeightPack object. An instance made by WeightPack.__new__
// without __init__ holds no value: TypeError instead of reading it.
const PyWeightPack& pack_of(py::handle obj) {
  auto* inst = reinterpret_cast<py::detail::instance*>(obj.ptr());
  auto v_h = inst->get_value_and_holder(py::detail::get_type_info(typeid(PyWeightPack)));
  if (!v_h || !v_h.holder_constructed() || !v_h.value_ptr())
    throw py::type_error("WeightPack is not initialised (made by __new__ without __init__)");
  return *static_cast<const PyWeightPack*>(v_h.value_ptr());
}

template <class T>
PyWeightPack make_pack_t(py::object kernel, py::object recurrent_kernel, index_t gates) {
  PyWeightPack p;
  p.kernel = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = p.kernel.shape(0), H = units_of(p.kernel, gates);
  p.recurrent_kernel = checked<T>(recurrent_kernel, "recurrent_kernel", {H, gates * H}).template cast<py::array>();
  for (auto [arr, name] : {std::pair<const py::array&, const char*>{p.kernel, "kernel"},
                           {p.recurrent_kernel, "recurrent_kernel"}})
    if (arr.writeable())
      throw py::value_error(std::string(name) + " must be read-only (flags.writeable = False): the pack "
                            "keeps using it, so it must not change while the pack exists");
  p.gates = gates;
  p.kernel_data = p.kernel.data();
  p.recurrent_kernel_data = p.recurrent_kernel.data();
  p.kernel_shape.assign(p.kernel.shape(), p.kernel.shape() + p.kernel.ndim());
  p.recurrent_kernel_shape.assign(p.recurrent_kernel.shape(), p.recurrent_kernel.shape() + p.recurrent_kernel.ndim());
  auto w = std::make_shared<rnnkit::WeightPack<T>>(I, H, static_cast<int>(gates), cptr<T>(p.kernel),
                                                   cptr<T>(p.recurrent_kernel));
  if constexpr (std::is_same_v<T, float>) p.f32 = w; else p.f64 = w;
  return p;
}

// The WeightPack of `pack` for a forward call with these kernel / recurrent_kernel objects (null
// when pack is None): it must have been made from exactly these arrays.
template <class T>
const rnnkit::WeightPack<T>* pack_for(const py::object& pack, const py::array& kernel,
                                      const py::array& recurrent_kernel, index_t gates) {
  if (pack.is_none()) return nullptr;
  if (!py::isinstance<PyWeightPack>(pack)) throw py::type_error("pack must be a WeightPack or None");
  const PyWeightPack& p = pack_of(pack);
  if (!p.kernel.is(kernel) || !p.recurrent_kernel.is(recurrent_kernel) || p.gates != gates)
    throw py::value_error("pack was not made from this kernel and recurrent_kernel (pass the arrays "
                          "the pack holds: pack.kernel, pack.recurrent_kernel)");
  auto same = [](const py::array& a, const void* data, const std::vector<index_t>& shape) {
    return a.data() == data && static_cast<std::size_t>(a.ndim()) == shape.size() &&
           std::equal(shape.begin(), shape.end(), a.shape());
  };
  if (!same(p.kernel, p.kernel_data, p.kernel_shape) ||
      !same(p.recurrent_kernel, p.recurrent_kernel_data, p.recurrent_kernel_shape))
    throw py::value_error("pack is stale: its kernel or recurrent_kernel was resized or reallocated "
                          "after packing; make a new WeightPack");
  const rnnkit::WeightPack<T>* w = p.get<T>();
  if (!w) throw py::value_error("pack has another dtype than kernel");
  return w;
}

// ---- SimpleRNN -----------------------------------------------------------------------------------
template <class T>
py::tuple simple_rnn_forward_t(py::object x, py::object kernel, py::object recurrent_kernel,
                               py::object bias, py::object h0, const std::string& activation,
                               py::object mask, bool go_backwards, bool training,
                               bool return_sequences, py::object pack, py::object zoneout_h) {
  py::array k = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = k.shape(0), H = units_of(k, 1);
  py::array xa = checked<T>(x, "x", {-1, -1, I}).template cast<py::array>();
  const index_t B = xa.shape(0), T_ = xa.shape(1);
  py::array rk = checked<T>(recurrent_kernel, "recurrent_kernel", {H, H}).template cast<py::array>();
  py::object ba = checked<T>(bias, "bias", {H}, true);
  py::object h0a = checked<T>(h0, "h0", {B, H}, true);
  py::object ma = checked_mask(mask, B, T_);
  rnnkit::SimpleRnnForward<T> args;
  args.pack = pack_for<T>(pack, k, rk, 1);
  args.batch = B; args.steps = T_; args.input_size = I; args.units = H;
  args.x = cptr<T>(xa); args.kernel = cptr<T>(k); args.recurrent_kernel = cptr<T>(rk);
  args.bias = cptr<T>(ba); args.h0 = cptr<T>(h0a); args.mask = mask_ptr(ma);
  args.activation = activation_of(activation, "activation");
  args.go_backwards = go_backwards;
  py::object outputs = return_sequences ? py::object(empty<T>({B, T_, H})) : py::object(py::none());
  py::array h_last = empty<T>({B, H});
  py::object za = checked<T>(zoneout_h, "zoneout_h", {B, T_, H}, true);
  args.zoneout_h = cptr<T>(za);
  py::object states = training ? py::object(empty<T>({T_ + 1, B, H})) : py::object(py::none());
  args.outputs = mptr<T>(outputs); args.h_last = mptr<T>(h_last); args.states = mptr<T>(states);
  py::object saved = states;
  if (training && args.zoneout_h) {  // the cell's own y_t too: saved = (states, y_cell)
    py::array y = empty<T>({T_, B, H});
    args.y_cell = mptr<T>(y);
    saved = py::make_tuple(states, y);
  }
  {
    py::gil_scoped_release release;
    rnnkit::simple_rnn_forward(args);
  }
  return py::make_tuple(outputs, h_last, saved);
}

template <class T>
py::tuple simple_rnn_backward_t(py::object d_outputs, py::object d_h_last, py::object x,
                                py::object kernel, py::object recurrent_kernel, py::object states,
                                py::object mask, const std::string& activation, bool go_backwards,
                                bool has_bias, py::object zoneout_h) {
  py::array k = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = k.shape(0), H = units_of(k, 1);
  py::array xa = checked<T>(x, "x", {-1, -1, I}).template cast<py::array>();
  const index_t B = xa.shape(0), T_ = xa.shape(1);
  py::array rk = checked<T>(recurrent_kernel, "recurrent_kernel", {H, H}).template cast<py::array>();
  py::object za = checked<T>(zoneout_h, "zoneout_h", {B, T_, H}, true);
  py::object y_cell = py::none();
  if (!za.is_none()) {  // states is simple_rnn_forward's (states, y_cell) with zoneout
    if (!py::isinstance<py::tuple>(states) || py::len(states) != 2)
      throw py::value_error("states must be the (states, y_cell) tuple of simple_rnn_forward with zoneout_h");
    py::tuple pair = states.cast<py::tuple>();
    states = pair[0];
    y_cell = checked<T>(pair[1], "y_cell", {T_, B, H});
  }
  py::array st = checked<T>(states, "states", {T_ + 1, B, H}).template cast<py::array>();
  py::object dout = checked<T>(d_outputs, "d_outputs", {B, T_, H}, true);
  py::object dhl = checked<T>(d_h_last, "d_h_last", {B, H}, true);
  py::object ma = checked_mask(mask, B, T_);
  py::array dx = empty<T>({B, T_, I}), dk = empty<T>({I, H}), drk = empty<T>({H, H});
  py::object db = has_bias ? py::object(empty<T>({H})) : py::object(py::none());
  py::array dh0 = empty<T>({B, H});
  rnnkit::SimpleRnnBackward<T> args;
  args.batch = B; args.steps = T_; args.input_size = I; args.units = H;
  args.d_outputs = cptr<T>(dout); args.d_h_last = cptr<T>(dhl); args.x = cptr<T>(xa);
  args.kernel = cptr<T>(k); args.recurrent_kernel = cptr<T>(rk); args.states = cptr<T>(st);
  args.zoneout_h = cptr<T>(za); args.y_cell = cptr<T>(y_cell);
  args.mask = mask_ptr(ma);
  args.activation = activation_of(activation, "activation");
  args.go_backwards = go_backwards;
  args.dx = mptr<T>(dx); args.d_kernel = mptr<T>(dk); args.d_recurrent_kernel = mptr<T>(drk);
  args.d_bias = mptr<T>(db); args.d_h0 = mptr<T>(dh0);
  {
    py::gil_scoped_release release;
    rnnkit::simple_rnn_backward(args);
  }
  return py::make_tuple(dx, dk, drk, db, dh0);
}

// ---- LSTM ------------------------------------------------------------------------------------------
template <class T>
py::tuple lstm_forward_t(py::object x, py::object kernel, py::object recurrent_kernel, py::object bias,
                         py::object h0, py::object c0, const std::string& activation,
                         const std::string& recurrent_activation, py::object mask, bool go_backwards,
                         bool training, bool return_sequences, py::object pack, py::object zoneout_h,
                         py::object zoneout_c) {
  py::array k = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = k.shape(0), H = units_of(k, 4);
  py::array xa = checked<T>(x, "x", {-1, -1, I}).template cast<py::array>();
  const index_t B = xa.shape(0), T_ = xa.shape(1);
  py::array rk = checked<T>(recurrent_kernel, "recurrent_kernel", {H, 4 * H}).template cast<py::array>();
  py::object ba = checked<T>(bias, "bias", {4 * H}, true);
  py::object h0a = checked<T>(h0, "h0", {B, H}, true);
  py::object c0a = checked<T>(c0, "c0", {B, H}, true);
  py::object ma = checked_mask(mask, B, T_);
  py::object zha = checked<T>(zoneout_h, "zoneout_h", {B, T_, H}, true);
  py::object zca = checked<T>(zoneout_c, "zoneout_c", {B, T_, H}, true);
  rnnkit::LstmForward<T> args;
  args.zoneout_h = cptr<T>(zha); args.zoneout_c = cptr<T>(zca);
  args.pack = pack_for<T>(pack, k, rk, 4);
  args.batch = B; args.steps = T_; args.input_size = I; args.units = H;
  args.x = cptr<T>(xa); args.kernel = cptr<T>(k); args.recurrent_kernel = cptr<T>(rk);
  args.bias = cptr<T>(ba); args.h0 = cptr<T>(h0a); args.c0 = cptr<T>(c0a); args.mask = mask_ptr(ma);
  args.activation = activation_of(activation, "activation");
  args.recurrent_activation = activation_of(recurrent_activation, "recurrent_activation");
  args.go_backwards = go_backwards;
  py::object outputs = return_sequences ? py::object(empty<T>({B, T_, H})) : py::object(py::none());
  py::array h_last = empty<T>({B, H}), c_last = empty<T>({B, H});
  py::object saved = py::none();
  if (training) {
    py::array hs = empty<T>({T_ + 1, B, H}), cs = empty<T>({T_ + 1, B, H}), gates = empty<T>({T_, B, 4 * H});
    args.h_states = mptr<T>(hs); args.c_states = mptr<T>(cs); args.gates = mptr<T>(gates);
    if (args.zoneout_c) {  // c' before zoneout, for the backward: a fourth saved array
      py::array cc = empty<T>({T_, B, H});
      args.c_cell = mptr<T>(cc);
      saved = py::make_tuple(hs, cs, gates, cc);
    } else {
      saved = py::make_tuple(hs, cs, gates);
    }
  }
  args.outputs = mptr<T>(outputs); args.h_last = mptr<T>(h_last); args.c_last = mptr<T>(c_last);
  {
    py::gil_scoped_release release;
    rnnkit::lstm_forward(args);
  }
  return py::make_tuple(outputs, h_last, c_last, saved);
}

template <class T>
py::tuple lstm_backward_t(py::object d_outputs, py::object d_h_last, py::object d_c_last, py::object x,
                          py::object kernel, py::object recurrent_kernel, py::tuple saved,
                          py::object mask, const std::string& activation,
                          const std::string& recurrent_activation, bool go_backwards, bool has_bias,
                          py::object zoneout_h, py::object zoneout_c) {
  py::array k = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = k.shape(0), H = units_of(k, 4);
  py::array xa = checked<T>(x, "x", {-1, -1, I}).template cast<py::array>();
  const index_t B = xa.shape(0), T_ = xa.shape(1);
  py::array rk = checked<T>(recurrent_kernel, "recurrent_kernel", {H, 4 * H}).template cast<py::array>();
  py::object zha = checked<T>(zoneout_h, "zoneout_h", {B, T_, H}, true);
  py::object zca = checked<T>(zoneout_c, "zoneout_c", {B, T_, H}, true);
  if (saved.size() != (zca.is_none() ? 3u : 4u))
    throw py::value_error(zca.is_none()
                              ? "saved must be the (h_states, c_states, gates) tuple of lstm_forward"
                              : "saved must be the (h_states, c_states, gates, c_cell) tuple of lstm_forward "
                                "with zoneout_c");
  py::object cc = zca.is_none() ? py::object(py::none()) : checked<T>(saved[3], "c_cell", {T_, B, H});
  py::array hs = checked<T>(saved[0], "h_states", {T_ + 1, B, H}).template cast<py::array>();
  py::array cs = checked<T>(saved[1], "c_states", {T_ + 1, B, H}).template cast<py::array>();
  py::array gates = checked<T>(saved[2], "gates", {T_, B, 4 * H}).template cast<py::array>();
  py::object dout = checked<T>(d_outputs, "d_outputs", {B, T_, H}, true);
  py::object dhl = checked<T>(d_h_last, "d_h_last", {B, H}, true);
  py::object dcl = checked<T>(d_c_last, "d_c_last", {B, H}, true);
  py::object ma = checked_mask(mask, B, T_);
  py::array dx = empty<T>({B, T_, I}), dk = empty<T>({I, 4 * H}), drk = empty<T>({H, 4 * H});
  py::object db = has_bias ? py::object(empty<T>({4 * H})) : py::object(py::none());
  py::array dh0 = empty<T>({B, H}), dc0 = empty<T>({B, H});
  rnnkit::LstmBackward<T> args;
  args.batch = B; args.steps = T_; args.input_size = I; args.units = H;
  args.d_outputs = cptr<T>(dout); args.d_h_last = cptr<T>(dhl); args.d_c_last = cptr<T>(dcl);
  args.x = cptr<T>(xa); args.kernel = cptr<T>(k); args.recurrent_kernel = cptr<T>(rk);
  args.h_states = cptr<T>(hs); args.c_states = cptr<T>(cs); args.gates = cptr<T>(gates);
  args.zoneout_h = cptr<T>(zha); args.zoneout_c = cptr<T>(zca); args.c_cell = cptr<T>(cc);
  args.mask = mask_ptr(ma);
  args.activation = activation_of(activation, "activation");
  args.recurrent_activation = activation_of(recurrent_activation, "recurrent_activation");
  args.go_backwards = go_backwards;
  args.dx = mptr<T>(dx); args.d_kernel = mptr<T>(dk); args.d_recurrent_kernel = mptr<T>(drk);
  args.d_bias = mptr<T>(db); args.d_h0 = mptr<T>(dh0); args.d_c0 = mptr<T>(dc0);
  {
    py::gil_scoped_release release;
    rnnkit::lstm_backward(args);
  }
  return py::make_tuple(dx, dk, drk, db, dh0, dc0);
}

// ---- GRU -------------------------------------------------------------------------------------------
template <class T>
py::tuple gru_forward_t(py::object x, py::object kernel, py::object recurrent_kernel, py::object bias,
                        py::object h0, const std::string& activation,
                        const std::string& recurrent_activation, bool reset_after, py::object mask,
                        bool go_backwards, bool training, bool return_sequences, py::object pack,
                        py::object zoneout_h) {
  py::array k = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = k.shape(0), H = units_of(k, 3);
  py::array xa = checked<T>(x, "x", {-1, -1, I}).template cast<py::array>();
  const index_t B = xa.shape(0), T_ = xa.shape(1);
  py::array rk = checked<T>(recurrent_kernel, "recurrent_kernel", {H, 3 * H}).template cast<py::array>();
  py::object ba = reset_after ? checked<T>(bias, "bias", {2, 3 * H}, true) : checked<T>(bias, "bias", {3 * H}, true);
  py::object h0a = checked<T>(h0, "h0", {B, H}, true);
  py::object ma = checked_mask(mask, B, T_);
  py::object za = checked<T>(zoneout_h, "zoneout_h", {B, T_, H}, true);
  rnnkit::GruForward<T> args;
  args.zoneout_h = cptr<T>(za);
  args.pack = pack_for<T>(pack, k, rk, 3);
  args.batch = B; args.steps = T_; args.input_size = I; args.units = H;
  args.x = cptr<T>(xa); args.kernel = cptr<T>(k); args.recurrent_kernel = cptr<T>(rk);
  args.bias = cptr<T>(ba); args.h0 = cptr<T>(h0a); args.mask = mask_ptr(ma);
  args.activation = activation_of(activation, "activation");
  args.recurrent_activation = activation_of(recurrent_activation, "recurrent_activation");
  args.reset_after = reset_after;
  args.go_backwards = go_backwards;
  py::object outputs = return_sequences ? py::object(empty<T>({B, T_, H})) : py::object(py::none());
  py::array h_last = empty<T>({B, H});
  py::object saved = py::none();
  if (training) {
    py::array st = empty<T>({T_ + 1, B, H}), gates = empty<T>({T_, B, 3 * H}), extra = empty<T>({T_, B, H});
    args.states = mptr<T>(st); args.gates = mptr<T>(gates); args.extra = mptr<T>(extra);
    saved = py::make_tuple(st, gates, extra);
  }
  args.outputs = mptr<T>(outputs); args.h_last = mptr<T>(h_last);
  {
    py::gil_scoped_release release;
    rnnkit::gru_forward(args);
  }
  return py::make_tuple(outputs, h_last, saved);
}

template <class T>
py::tuple gru_backward_t(py::object d_outputs, py::object d_h_last, py::object x, py::object kernel,
                         py::object recurrent_kernel, py::tuple saved, py::object mask,
                         const std::string& activation, const std::string& recurrent_activation,
                         bool reset_after, bool go_backwards, bool has_bias, py::object zoneout_h) {
  py::array k = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = k.shape(0), H = units_of(k, 3);
  py::array xa = checked<T>(x, "x", {-1, -1, I}).template cast<py::array>();
  const index_t B = xa.shape(0), T_ = xa.shape(1);
  py::array rk = checked<T>(recurrent_kernel, "recurrent_kernel", {H, 3 * H}).template cast<py::array>();
  if (saved.size() != 3) throw py::value_error("saved must be the (states, gates, extra) tuple of gru_forward");
  py::array st = checked<T>(saved[0], "states", {T_ + 1, B, H}).template cast<py::array>();
  py::array gates = checked<T>(saved[1], "gates", {T_, B, 3 * H}).template cast<py::array>();
  py::array extra = checked<T>(saved[2], "extra", {T_, B, H}).template cast<py::array>();
  py::object dout = checked<T>(d_outputs, "d_outputs", {B, T_, H}, true);
  py::object dhl = checked<T>(d_h_last, "d_h_last", {B, H}, true);
  py::object ma = checked_mask(mask, B, T_);
  py::object za = checked<T>(zoneout_h, "zoneout_h", {B, T_, H}, true);
  py::array dx = empty<T>({B, T_, I}), dk = empty<T>({I, 3 * H}), drk = empty<T>({H, 3 * H});
  py::object db = py::none();
  if (has_bias) db = reset_after ? py::object(empty<T>({2, 3 * H})) : py::object(empty<T>({3 * H}));
  py::array dh0 = empty<T>({B, H});
  rnnkit::GruBackward<T> args;
  args.batch = B; args.steps = T_; args.input_size = I; args.units = H;
  args.d_outputs = cptr<T>(dout); args.d_h_last = cptr<T>(dhl);
  args.x = cptr<T>(xa); args.kernel = cptr<T>(k); args.recurrent_kernel = cptr<T>(rk);
  args.states = cptr<T>(st); args.gates = cptr<T>(gates); args.extra = cptr<T>(extra);
  args.mask = mask_ptr(ma);
  args.zoneout_h = cptr<T>(za);
  args.activation = activation_of(activation, "activation");
  args.recurrent_activation = activation_of(recurrent_activation, "recurrent_activation");
  args.reset_after = reset_after;
  args.go_backwards = go_backwards;
  args.dx = mptr<T>(dx); args.d_kernel = mptr<T>(dk); args.d_recurrent_kernel = mptr<T>(drk);
  args.d_bias = mptr<T>(db); args.d_h0 = mptr<T>(dh0);
  {
    py::gil_scoped_release release;
    rnnkit::gru_backward(args);
  }
  return py::make_tuple(dx, dk, drk, db, dh0);
}

// ---- GEMM and Dense --------------------------------------------------------------------------------
template <class T>
py::array gemm_t(py::object a, py::object b, bool trans_a, bool trans_b) {
  py::array aa = checked<T>(a, "a", {-1, -1}).template cast<py::array>();
  py::array bb = checked<T>(b, "b", {-1, -1}).template cast<py::array>();
  rnnkit::MatView<const T> av = rnnkit::row_major(cptr<T>(aa), aa.shape(0), aa.shape(1), aa.shape(1));
  rnnkit::MatView<const T> bv = rnnkit::row_major(cptr<T>(bb), bb.shape(0), bb.shape(1), bb.shape(1));
  if (trans_a) av = av.t();
  if (trans_b) bv = bv.t();
  if (av.ncols() != bv.nrows())
    throw py::value_error("gemm: inner dimensions differ: a is " + shape_str({av.nrows(), av.ncols()}) +
                          " and b is " + shape_str({bv.nrows(), bv.ncols()}) + " after transposes");
  py::array c = empty<T>({av.nrows(), bv.ncols()});
  rnnkit::MatView<T> cv = rnnkit::row_major(mptr<T>(c), av.nrows(), bv.ncols(), bv.ncols());
  {
    py::gil_scoped_release release;
    rnnkit::gemm<T>(av, bv, cv, false, rnnkit::get_num_threads());
  }
  return c;
}

template <class T>
py::array dense_forward_t(py::object x, py::object kernel, py::object bias, const std::string& activation) {
  py::array k = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = k.shape(0), U = k.shape(1);
  py::array xa = checked<T>(x, "x", {-1, I}).template cast<py::array>();
  py::object ba = checked<T>(bias, "bias", {U}, true);
  const index_t N = xa.shape(0);
  py::array y = empty<T>({N, U});
  rnnkit::DenseForward<T> args;
  args.rows = N, args.input_size = I, args.units = U;
  args.x = cptr<T>(xa), args.kernel = cptr<T>(k), args.bias = cptr<T>(ba);
  args.activation = activation_of(activation, "activation");
  args.y = mptr<T>(y);
  {
    py::gil_scoped_release release;
    rnnkit::dense_forward(args);
  }
  return y;
}

template <class T>
py::tuple dense_backward_t(py::object d_y, py::object x, py::object kernel, py::object y,
                           const std::string& activation, bool has_bias) {
  py::array k = checked<T>(kernel, "kernel", {-1, -1}).template cast<py::array>();
  const index_t I = k.shape(0), U = k.shape(1);
  py::array xa = checked<T>(x, "x", {-1, I}).template cast<py::array>();
  const index_t N = xa.shape(0);
  py::array dya = checked<T>(d_y, "d_y", {N, U}).template cast<py::array>();
  py::array ya = checked<T>(y, "y", {N, U}).template cast<py::array>();
  rnnkit::DenseBackward<T> args;
  args.rows = N, args.input_size = I, args.units = U;
  args.d_y = cptr<T>(dya), args.x = cptr<T>(xa), args.kernel = cptr<T>(k), args.y = cptr<T>(ya);
  args.activation = activation_of(activation, "activation");
  py::array dx = empty<T>({N, I}), dk = empty<T>({I, U});
  py::object db = has_bias ? py::object(empty<T>({U})) : py::none();
  rnnkit::Buffer<T> dz(args.activation == rnnkit::Activation::kLinear ? 1 : std::max<index_t>(1, N * U));
  args.dx = mptr<T>(dx), args.d_kernel = mptr<T>(dk), args.d_bias = mptr<T>(db);
  args.dz = dz.data();
  {
    py::gil_scoped_release release;
    rnnkit::dense_backward(args);
  }
  return py::make_tuple(dx, dk, db);
}

template <class T>
py::array activation_t(const std::string& name, py::object x) {
  py::array xa = checked<T>(x, "x", {-1}).template cast<py::array>();
  py::array y = empty<T>({xa.shape(0)});
  const rnnkit::Activation act = activation_of(name, "name");
  rnnkit::kernels<T>().activation(act, cptr<T>(xa), mptr<T>(y), xa.shape(0));
  return y;
}

template <class T>
py::array exp_t(py::object x) {
  py::array xa = checked<T>(x, "x", {-1}).template cast<py::array>();
  py::array y = empty<T>({xa.shape(0)});
  rnnkit::kernels<T>().exp(cptr<T>(xa), mptr<T>(y), xa.shape(0));
  return y;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "rnnkit's native kernels (C++, OpenMP). Use rnnkit.ops; these take canonical arrays.";

  py::class_<PyWeightPack>(m, "WeightPack",
                           "kernel (I, G*H) and recurrent_kernel (H, G*H), both read-only, packed once "
                           "for the inference calls of *_forward(..., pack=)")
      .def(py::init([](py::object kernel, py::object recurrent_kernel, index_t gates) {
             if (gates != 1 && gates != 3 && gates != 4)
               throw py::value_error("gates must be 1, 3 or 4, got " + std::to_string(gates));
             return by_dtype(kernel, "kernel", [&](auto tag) {
               return make_pack_t<decltype(tag)>(kernel, recurrent_kernel, gates);
             });
           }),
           py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("gates"))
      // self as a handle: pack_of refuses an uninitialised instance (a reference to it would crash)
      .def_property_readonly("kernel", [](py::handle self) { return pack_of(self).kernel; })
      .def_property_readonly("recurrent_kernel", [](py::handle self) { return pack_of(self).recurrent_kernel; })
      .def_property_readonly("gates", [](py::handle self) { return pack_of(self).gates; })
      .def_property_readonly("packed_bytes", [](py::handle self) {
        const PyWeightPack& p = pack_of(self);
        return p.f32 ? p.f32->packed_bytes() : p.f64->packed_bytes();
      }, "bytes of the panel layouts made so far (they are made on first use)");

  m.def("simple_rnn_forward",
        [](py::object x, py::object kernel, py::object rk, py::object bias, py::object h0,
           const std::string& activation, py::object mask, bool go_backwards, bool training,
           bool return_sequences, py::object pack, py::object zoneout_h) {
          return by_dtype(kernel, "kernel", [&](auto tag) {
            return simple_rnn_forward_t<decltype(tag)>(x, kernel, rk, bias, h0, activation, mask,
                                                       go_backwards, training, return_sequences, pack,
                                                       zoneout_h);
          });
        },
        py::arg("x"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"), py::arg("h0"),
        py::arg("activation"), py::arg("mask"), py::arg("go_backwards"), py::arg("training"),
        py::arg("return_sequences"), py::arg("pack") = py::none(), py::arg("zoneout_h") = py::none(),
        "-> (outputs (B,T,H) | None, h_last (B,H), states (T+1,B,H) | None); with zoneout_h (B,T,H) keep "
        "weights in training, states is the pair (states, y_cell (T,B,H))");
  m.def("simple_rnn_backward",
        [](py::object d_outputs, py::object d_h_last, py::object x, py::object kernel, py::object rk,
           py::object states, py::object mask, const std::string& activation, bool go_backwards,
           bool has_bias, py::object zoneout_h) {
          return by_dtype(kernel, "kernel", [&](auto tag) {
            return simple_rnn_backward_t<decltype(tag)>(d_outputs, d_h_last, x, kernel, rk, states,
                                                        mask, activation, go_backwards, has_bias, zoneout_h);
          });
        },
        py::arg("d_outputs"), py::arg("d_h_last"), py::arg("x"), py::arg("kernel"),
        py::arg("recurrent_kernel"), py::arg("states"), py::arg("mask"), py::arg("activation"),
        py::arg("go_backwards"), py::arg("has_bias"), py::arg("zoneout_h") = py::none(),
        "-> (dx, d_kernel, d_recurrent_kernel, d_bias | None, d_h0)");
  m.def("lstm_forward",
        [](py::object x, py::object kernel, py::object rk, py::object bias, py::object h0, py::object c0,
           const std::string& activation, const std::string& recurrent_activation, py::object mask,
           bool go_backwards, bool training, bool return_sequences, py::object pack, py::object zoneout_h,
           py::object zoneout_c) {
          return by_dtype(kernel, "kernel", [&](auto tag) {
            return lstm_forward_t<decltype(tag)>(x, kernel, rk, bias, h0, c0, activation,
                                                 recurrent_activation, mask, go_backwards, training,
                                                 return_sequences, pack, zoneout_h, zoneout_c);
          });
        },
        py::arg("x"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"), py::arg("h0"),
        py::arg("c0"), py::arg("activation"), py::arg("recurrent_activation"), py::arg("mask"),
        py::arg("go_backwards"), py::arg("training"), py::arg("return_sequences"),
        py::arg("pack") = py::none(), py::arg("zoneout_h") = py::none(), py::arg("zoneout_c") = py::none(),
        "-> (outputs | None, h_last, c_last, saved | None); saved = (h_states, c_states, gates[, c_cell]); "
        "zoneout_h / zoneout_c (B, T, H) keep weights or None");
  m.def("lstm_backward",
        [](py::object d_outputs, py::object d_h_last, py::object d_c_last, py::object x, py::object kernel,
           py::object rk, py::tuple saved, py::object mask, const std::string& activation,
           const std::string& recurrent_activation, bool go_backwards, bool has_bias, py::object zoneout_h,
           py::object zoneout_c) {
          return by_dtype(kernel, "kernel", [&](auto tag) {
            return lstm_backward_t<decltype(tag)>(d_outputs, d_h_last, d_c_last, x, kernel, rk,
                                                  saved, mask, activation, recurrent_activation,
                                                  go_backwards, has_bias, zoneout_h, zoneout_c);
          });
        },
        py::arg("d_outputs"), py::arg("d_h_last"), py::arg("d_c_last"), py::arg("x"), py::arg("kernel"),
        py::arg("recurrent_kernel"), py::arg("saved"), py::arg("mask"), py::arg("activation"),
        py::arg("recurrent_activation"), py::arg("go_backwards"), py::arg("has_bias"),
        py::arg("zoneout_h") = py::none(), py::arg("zoneout_c") = py::none(),
        "-> (dx, d_kernel, d_recurrent_kernel, d_bias | None, d_h0, d_c0)");
  m.def("gru_forward",
        [](py::object x, py::object kernel, py::object rk, py::object bias, py::object h0,
           const std::string& activation, const std::string& recurrent_activation, bool reset_after,
           py::object mask, bool go_backwards, bool training, bool return_sequences, py::object pack,
           py::object zoneout_h) {
          return by_dtype(kernel, "kernel", [&](auto tag) {
            return gru_forward_t<decltype(tag)>(x, kernel, rk, bias, h0, activation,
                                                recurrent_activation, reset_after, mask,
                                                go_backwards, training, return_sequences, pack, zoneout_h);
          });
        },
        py::arg("x"), py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"), py::arg("h0"),
        py::arg("activation"), py::arg("recurrent_activation"), py::arg("reset_after"), py::arg("mask"),
        py::arg("go_backwards"), py::arg("training"), py::arg("return_sequences"),
        py::arg("pack") = py::none(), py::arg("zoneout_h") = py::none(),
        "-> (outputs | None, h_last, saved | None); saved = (states, gates, extra); zoneout_h (B, T, H) "
        "keep weights or None");
  m.def("gru_backward",
        [](py::object d_outputs, py::object d_h_last, py::object x, py::object kernel, py::object rk,
           py::tuple saved, py::object mask, const std::string& activation,
           const std::string& recurrent_activation, bool reset_after, bool go_backwards, bool has_bias,
           py::object zoneout_h) {
          return by_dtype(kernel, "kernel", [&](auto tag) {
            return gru_backward_t<decltype(tag)>(d_outputs, d_h_last, x, kernel, rk, saved, mask,
                                                 activation, recurrent_activation, reset_after,
                                                 go_backwards, has_bias, zoneout_h);
          });
        },
        py::arg("d_outputs"), py::arg("d_h_last"), py::arg("x"), py::arg("kernel"),
        py::arg("recurrent_kernel"), py::arg("saved"), py::arg("mask"), py::arg("activation"),
        py::arg("recurrent_activation"), py::arg("reset_after"), py::arg("go_backwards"),
        py::arg("has_bias"), py::arg("zoneout_h") = py::none(),
        "-> (dx, d_kernel, d_recurrent_kernel, d_bias | None, d_h0)");
  m.def("gemm",
        [](py::object a, py::object b, bool trans_a, bool trans_b) {
          return by_dtype(a, "a", [&](auto tag) {
            return gemm_t<decltype(tag)>(a, b, trans_a, trans_b);
          });
        },
        py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        "C = op(a) @ op(b) with the packed GEMM (a, b C-contiguous, same float dtype)");
  m.def("dense_forward",
        [](py::object x, py::object kernel, py::object bias, const std::string& activation) {
          return by_dtype(kernel, "kernel", [&](auto tag) {
            return dense_forward_t<decltype(tag)>(x, kernel, bias, activation);
          });
        },
        py::arg("x"), py::arg("kernel"), py::arg("bias"), py::arg("activation"),
        "y (N,U) = act(x (N,I) @ kernel (I,U) + bias)");
  m.def("dense_backward",
        [](py::object d_y, py::object x, py::object kernel, py::object y, const std::string& activation,
           bool has_bias) {
          return by_dtype(kernel, "kernel", [&](auto tag) {
            return dense_backward_t<decltype(tag)>(d_y, x, kernel, y, activation, has_bias);
          });
        },
        py::arg("d_y"), py::arg("x"), py::arg("kernel"), py::arg("y"), py::arg("activation"), py::arg("has_bias"),
        "(dx (N,I), d_kernel (I,U), d_bias (U) or None) of dense_forward, from d_y (N,U) and its x, y");
  m.def("activation",
        [](const std::string& name, py::object x) {
          return by_dtype(x, "x", [&](auto tag) {
            return activation_t<decltype(tag)>(name, x);
          });
        },
        py::arg("name"), py::arg("x"), "vectorised activation of a 1-D array (for accuracy tests)");
  m.def("exp", [](py::object x) { return by_dtype(x, "x", [&](auto tag) {
   return exp_t<decltype(tag)>(x);
 }); },
        py::arg("x"), "vectorised exp of a 1-D array (for accuracy tests)");
  m.def("set_num_threads", [](int n) { rnnkit::set_num_threads(n); }, py::arg("n"));
  m.def("max_threads", &rnnkit::max_threads, "the largest accepted thread count (4 x cores)");
  m.def("get_num_threads", &rnnkit::get_num_threads);
  m.def("have_openmp", &rnnkit::have_openmp);
  m.def("isa", []() { return std::string(rnnkit::active_isa()); }, "the ISA whose kernels run");
  // names with a NUL inside would name another ISA as C strings ("avx2\0x")
  m.def("isa_supported", [](const std::string& n) {
    return n.find('\0') == std::string::npos && rnnkit::isa_supported(n.c_str());
  }, py::arg("name"));
  m.def("force_isa", [](const std::string& n) {
    if (n.find('\0') != std::string::npos)
      throw py::value_error("name must not contain NUL characters, got " + std::string(py::repr(py::str(n))));
    rnnkit::force_isa(n.c_str());
  }, py::arg("name"),
        "switch ISA for the rest of the process; not while kernels run on other threads");
  m.def("release_cached_blocks", &rnnkit::release_cached_blocks,
        "return the cached large blocks (freed results and workspaces) to the system");
  m.def("cached_block_bytes", &rnnkit::cached_block_bytes,
        "bytes of freed large blocks the cache currently holds (at most RNNKIT_CACHE_MB MiB)");
  m.def("set_batch_lanes",
        [](const std::string& mode) {
          static const char* const names[] = {"auto", "on", "off"};
          int m = -1;
          for (int i = 0; i < 3; ++i)
            if (mode == names[i]) m = i;
          if (m < 0) throw py::value_error("mode must be 'auto', 'on' or 'off', got '" + mode + "'");
          return std::string(names[rnnkit::set_batch_lanes(m)]);
        },
        py::arg("mode"),
        "batch-lane forward path for few-unit cells: 'auto' (by shape), 'on' or 'off'; returns "
        "the previous mode (tests and benchmarks; not while kernels run on other threads)");
  m.def("settings",
        []() {
          const rnnkit::Settings& s = rnnkit::settings();
          py::dict d;
          d["RNNKIT_ISA"] = s.isa;
          d["RNNKIT_BATCH_LANES"] = rnnkit::kBatchLanesNames[s.batch_lanes];
          d["RNNKIT_RECURRENT_SPLIT"] = rnnkit::kRecurrentSplitNames[s.recurrent_split];
          d["RNNKIT_PARALLEL_MIN_FLOPS"] = s.parallel_min_flops;
          d["RNNKIT_CACHE_MB"] = s.cache_mb;
          return d;
        },
        "the effective values of the RNNKIT_* variables the C++ core read at start-up (the defaults "
        "where unset or invalid; force_isa and set_batch_lanes do not change them)");
  m.def("settings_problems",
        []() {
          py::list out;
          for (const rnnkit::SettingProblem& p : rnnkit::settings().problems) {
            // decoded as os.environ does (surrogateescape), so that any bytes round-trip
            PyObject* value = PyUnicode_DecodeFSDefaultAndSize(p.value.data(), py::ssize_t(p.value.size()));
            if (!value) throw py::error_already_set();
            out.append(py::make_tuple(p.name, py::reinterpret_steal<py::str>(value), p.accepted, p.used));
          }
          return out;
        },
        "the RNNKIT_* variables whose value the C++ core did not accept: (name, value, accepted, "
        "used instead) tuples; rnnkit warns about each when it loads this module");
  m.def("peak_gflops",
        [](const std::string& dtype, int threads) {
          if (dtype != "float32" && dtype != "float64")
            throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
          // bounded like set_num_threads: far more threads than cores makes the OpenMP runtime abort
          if (threads < 1 || threads > rnnkit::max_threads())
            throw py::value_error("threads must be between 1 and " + std::to_string(rnnkit::max_threads()) +
                                  " (max_threads()), got " + std::to_string(threads));
          py::gil_scoped_release release;
          return rnnkit::measure_peak_gflops(dtype == "float64", threads);
        },
        py::arg("dtype") = "float32", py::arg("threads") = 1,
        "measured FMA peak in GFLOP/s of the active ISA");
}
