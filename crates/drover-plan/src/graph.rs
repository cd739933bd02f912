//! The dependency graph of a plan, on petgraph.
//!
//! Edges point from a dependency to its dependent (`customers -> orders`), the order in which
//! tables are restored. A [`PlanGraph`] inside a validated [`Plan`] is acyclic.

use std::collections::VecDeque;

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::{Plan, Region, TableId};

/// Tables as nodes, `dependency -> dependent` edges.
#[derive(Debug, Clone, Default)]
pub struct PlanGraph {
    graph: DiGraph<TableId, ()>,
}

impl PlanGraph {
    /// A graph of `n` tables with `(dependent, dependency)` edges.
    pub(crate) fn new(n: usize, depends_on: impl IntoIterator<Item = (usize, usize)>) -> PlanGraph {
        let mut graph = DiGraph::with_capacity(n, 0);
        for i in 0..n {
            graph.add_node(TableId(i));
        }
        for (dependent, dependency) in depends_on {
            graph.add_edge(NodeIndex::new(dependency), NodeIndex::new(dependent), ());
        }
        PlanGraph { graph }
    }

    /// The underlying petgraph graph (`dependency -> dependent`).
    #[must_use]
    pub fn petgraph(&self) -> &DiGraph<TableId, ()> {
        &self.graph
    }

    /// Tables `id` depends on directly.
    pub fn dependencies(&self, id: TableId) -> impl Iterator<Item = TableId> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(id.0), Direction::Incoming)
            .map(|n| TableId(n.index()))
    }

    /// Tables that depend on `id` directly.
    pub fn dependents(&self, id: TableId) -> impl Iterator<Item = TableId> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(id.0), Direction::Outgoing)
            .map(|n| TableId(n.index()))
    }

    /// Every table, each after its dependencies (plan order where the graph allows).
    #[must_use]
    pub fn topological_order(&self) -> Vec<TableId> {
        let mut indegree: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| self.graph.neighbors_directed(n, Direction::Incoming).count())
            .collect();
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
            (0..indegree.len()).filter(|i| indegree[*i] == 0).map(std::cmp::Reverse).collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(TableId(i));
            for n in self.graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
                indegree[n.index()] -= 1;
                if indegree[n.index()] == 0 {
                    ready.push(std::cmp::Reverse(n.index()));
                }
            }
        }
        order
    }

    /// Every dependency cycle, each as a path that starts and ends at the same table
    /// (`[a, b, c, a]`: `a` depends on `b`, `b` on `c`, `c` on `a`). Self-loops are not
    /// reported here.
    pub(crate) fn cycles(&self) -> Vec<Vec<TableId>> {
        let mut cycles = Vec::new();
        for mut scc in tarjan_scc(&self.graph) {
            if scc.len() < 2 {
                continue;
            }
            scc.sort();
            let start = scc[0];
            // Shortest cycle through `start`, walking "depends on" edges inside the component.
            let mut prev = vec![None; self.graph.node_count()];
            let mut queue = VecDeque::from([start]);
            let mut closing = None;
            'bfs: while let Some(n) = queue.pop_front() {
                for dep in self.graph.neighbors_directed(n, Direction::Incoming) {
                    if dep == start {
                        closing = Some(n);
                        break 'bfs;
                    }
                    if prev[dep.index()].is_none() && scc.binary_search(&dep).is_ok() {
                        prev[dep.index()] = Some(n);
                        queue.push_back(dep);
                    }
                }
            }
            let Some(mut n) = closing else { continue };
            let mut path = vec![TableId(start.index())];
            let mut back = vec![TableId(n.index())];
            while let Some(p) = prev[n.index()] {
                back.push(TableId(p.index()));
                n = p;
            }
            back.pop(); // `start` itself
            path.extend(back.into_iter().rev());
            path.push(TableId(start.index()));
            cycles.push(path);
        }
        cycles.sort();
        cycles
    }

    /// Restore waves in `region`: each wave holds the tables whose dependencies are all in
    /// earlier waves (plan order within a wave).
    #[must_use]
    pub fn waves(&self, plan: &Plan, region: &Region) -> Vec<Vec<TableId>> {
        let depth = self.depths(plan, region, |_| 1);
        let mut waves: Vec<Vec<TableId>> = Vec::new();
        for (id, d) in depth.iter().enumerate() {
            if let Some(d) = d {
                let wave = usize::try_from(*d - 1).unwrap_or(usize::MAX);
                if waves.len() <= wave {
                    waves.resize(wave + 1, Vec::new());
                }
                waves[wave].push(TableId(id));
            }
        }
        waves
    }

    /// The heaviest dependency chain in `region` (dependency first), where a chain weighs the
    /// sum of its tables' `weight`; with a weight of 1 per table, the longest chain.
    #[must_use]
    pub fn critical_path(
        &self,
        plan: &Plan,
        region: &Region,
        weight: impl Fn(TableId) -> u64,
    ) -> Vec<TableId> {
        let depth = self.depths(plan, region, &weight);
        let Some(mut end) = (0..depth.len())
            .filter(|i| depth[*i].is_some())
            .max_by_key(|i| (depth[*i], std::cmp::Reverse(*i)))
        else {
            return Vec::new();
        };
        let mut path = vec![TableId(end)];
        loop {
            let want = depth[end].unwrap_or(0) - weight(TableId(end));
            let prev = self.dependencies(TableId(end)).filter(|d| depth[d.0] == Some(want)).min();
            match prev {
                Some(p) if want > 0 => {
                    path.push(p);
                    end = p.0;
                }
                _ => break,
            }
        }
        path.reverse();
        path
    }

    /// For each table restored in `region`, the weight of the heaviest chain ending in it.
    fn depths(
        &self,
        plan: &Plan,
        region: &Region,
        weight: impl Fn(TableId) -> u64,
    ) -> Vec<Option<u64>> {
        let mut depth: Vec<Option<u64>> = vec![None; self.graph.node_count()];
        let order = petgraph::algo::toposort(&self.graph, None).unwrap_or_default();
        for n in order {
            let id = TableId(n.index());
            if !plan.table(id).targets.contains(region) {
                continue;
            }
            let before = self.dependencies(id).filter_map(|d| depth[d.0]).max().unwrap_or(0);
            depth[id.0] = Some(before + weight(id));
        }
        depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_reported_as_paths() {
        // 0 -> 1 -> 2 -> 0 (depends on), and 3 -> 3 is a self-loop (not reported).
        let g = PlanGraph::new(4, [(0, 1), (1, 2), (2, 0), (3, 3)]);
        assert_eq!(g.cycles(), vec![vec![TableId(0), TableId(1), TableId(2), TableId(0)]]);
    }

    #[test]
    fn shortest_cycle_through_the_first_table() {
        // 0 depends on 1 and 2; 1 depends on 2; 2 depends on 0.
        let g = PlanGraph::new(3, [(0, 1), (0, 2), (1, 2), (2, 0)]);
        assert_eq!(g.cycles(), vec![vec![TableId(0), TableId(2), TableId(0)]]);
    }
}
