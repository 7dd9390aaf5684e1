/**
 * A one-node cluster with nothing standing in: the control plane (cluster.ts) with the
 * controllers a real node and the chart need (namespace, nodelifecycle, daemonset,
 * garbagecollector, serviceaccount, root-ca-cert-publisher), kube-scheduler, the real node
 * (realnode.ts) and the test bed's images (images.ts) imported into its containerd. For the tests
 * that install the chart and run the agent as its DaemonSet pod.
 */
import type { ControlPlane, TestLike } from './cluster.js';
import { startControlPlane } from './cluster.js';
import { ensureAgentImage, ensureNginxImage, ensurePauseImage, type BuiltImage } from './images.js';
import { nodeBinaries, startRealNode, type RealNode } from './realnode.js';

/** The cluster, its node and the images on it. */
export interface RealCluster {
  readonly cp: ControlPlane;
  readonly node: RealNode;
  readonly agentImage: BuiltImage;
  readonly nginxImage: BuiltImage;
  /** `host:port` of the API server, as the chart's `apiServer` value takes it. */
  readonly apiServer: string;
  /**
   * The `--set` flags that point the chart at this cluster: the built agent image, the kubelet's
   * root dir as `kubeletRoot`, and `apiServer` (the node has no kube-proxy).
   */
  readonly chartArgs: readonly string[];
}

/** The controllers the real node and the chart's DaemonSet need. */
export const REAL_CLUSTER_CONTROLLERS: readonly string[] = [
  'namespace',
  'nodelifecycle',
  'daemonset',
  'garbagecollector',
  'serviceaccount',
  'root-ca-cert-publisher',
];

/** Starts it all (images first: they may need building), torn down with `t`. */
export async function startRealCluster(t: TestLike, o: { readonly node: string }): Promise<RealCluster> {
  const pauseImage = await ensurePauseImage();
  const nginxImage = await ensureNginxImage();
  const agentImage = await ensureAgentImage();
  const cp = await startControlPlane(t, { nodes: [o.node], serviceAccountAdmission: true });
  await cp.startControllerManager(REAL_CLUSTER_CONTROLLERS);
  await cp.startScheduler((await nodeBinaries()).kubeScheduler);
  const node = await startRealNode(t, { cp, name: o.node, pauseImage });
  await node.importImage(nginxImage.archive, nginxImage.ref);
  await node.importImage(agentImage.archive, agentImage.ref);
  const apiServer = cp.server.replace(/^https:\/\//, '');
  const colon = agentImage.ref.lastIndexOf(':');
  const chartArgs = [
    '--set',
    `image.repository=${agentImage.ref.slice(0, colon)}`,
    '--set',
    `image.tag=${agentImage.ref.slice(colon + 1)}`,
    '--set',
    `kubeletRoot=${node.kubeletRoot}`,
    '--set',
    `apiServer=${apiServer}`,
  ];
  return { cp, node, agentImage, nginxImage, apiServer, chartArgs };
}
