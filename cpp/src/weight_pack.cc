#include "rnnkit/weight_pack.h"

#include "rnnkit/threading.h"

namespace rnnkit {

template <class T>
std::shared_ptr<const PackedWeights<T>> WeightPack<T>::get(index_t groups) const {
  const Kernels<T>& ker = kernels<T>();
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<const PackedWeights<T>>& slot = layouts_[groups == 1 ? 0 : 1];
  if (slot && slot->isa == &ker) return slot;
  auto p = std::make_shared<PackedWeights<T>>();
  const index_t GH = gates_ * units_;
  p->isa = &ker;
  packed_b_prepare(p->kernel, input_size_, GH / groups, groups);
  packed_b_prepare(p->recurrent, units_, GH / groups, groups);
  const MatView<const T> kv = row_major(kernel_, input_size_, GH, GH);
  const MatView<const T> rv = row_major(recurrent_, units_, GH, GH);
  parallel(get_num_threads(), [&](int tid, int nt) {
    packed_b_fill(p->kernel, kv, tid, nt);
    packed_b_fill(p->recurrent, rv, tid, nt);
  });
  slot = p;
  return slot;
}

template <class T>
std::size_t WeightPack<T>::packed_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (const auto& l : layouts_)
    if (l) n += static_cast<std::size_t>(l->kernel.buf.capacity() + l->recurrent.buf.capacity()) * sizeof(T);
  return n;
}

template class WeightPack<float>;
template class WeightPack<double>;

}  // namespace rnnkit
